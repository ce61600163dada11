"""QIDO-RS default attributes of PS3.18 Table 10.6.1-5 kept by new index columns:
TimezoneOffsetFromUTC (study), PerformedProcedureStepStartDate/Time (series) and
BitsAllocated (instance), answered and matched; an index made before those columns answers
them empty until `lightbox rebuild-index` reads them back from the stored files."""

from __future__ import annotations

import sqlite3

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset
from pydicom.uid import generate_uid

from support.dicomgen import make_dataset, write
from support.lightbox import LightboxProcess
from support.web import ADMIN, ADMIN_PASSWORD, base_url, first_admin

STUDY, SERIES, PLAIN = generate_uid(), generate_uid(), generate_uid()
NEW_COLUMNS = {"study": ["timezone_offset"], "series": ["pps_start_date", "pps_start_time"],
               "instance": ["bits_allocated"]}  # fmt: skip


def store(server: LightboxProcess, folder) -> None:
    """A study whose files carry the three, and one whose file carries none of them but BitsAllocated."""
    with_them = make_dataset(study_uid=STUDY, series_uid=SERIES, TimezoneOffsetFromUTC="+0100",
                             PerformedProcedureStepStartDate="20260110", PerformedProcedureStepStartTime="083000")  # fmt: skip
    without = make_dataset(study_uid=PLAIN, rows=8, columns=8, BitsAllocated=8, BitsStored=8, HighBit=7)
    without.PixelData = bytes(64)
    result = server.storescu(write(with_them, folder / "a.dcm"), write(without, folder / "b.dcm"))
    assert result.returncode == 0, result.stdout + result.stderr


def client_of(server: LightboxProcess) -> DICOMwebClient:
    session = requests.Session()
    session.auth, session.trust_env = (ADMIN, ADMIN_PASSWORD), False
    return DICOMwebClient(url=base_url(server) + "/dicom-web", session=session)


def defaults(client: DICOMwebClient) -> dict[str, tuple]:
    """The three attributes as answered, by study."""
    found = {}
    for study in (STUDY, PLAIN):
        [s] = [Dataset.from_json(r) for r in client.search_for_studies(search_filters={"StudyInstanceUID": study})]
        [se] = [Dataset.from_json(r) for r in client.search_for_series(study)]
        [i] = [Dataset.from_json(r) for r in client.search_for_instances(study)]
        assert all(k in x for x, k in ((s, "TimezoneOffsetFromUTC"), (se, "PerformedProcedureStepStartDate"),
                                       (se, "PerformedProcedureStepStartTime"), (i, "BitsAllocated")))  # fmt: skip
        found[study] = (s.TimezoneOffsetFromUTC, se.PerformedProcedureStepStartDate,
                        se.PerformedProcedureStepStartTime, i.BitsAllocated)  # fmt: skip
    return found


EXPECTED = {STUDY: ("+0100", "20260110", "083000", 16), PLAIN: ("", "", "", 8)}


def test_new_defaults_are_answered_and_matched(server, admin, tmp_path):
    store(server, tmp_path)
    client = client_of(server)
    assert defaults(client) == EXPECTED
    answer = client.search_for_series(STUDY)[0]
    assert answer["00400244"] == {"vr": "DA", "Value": ["20260110"]} and answer["00400245"]["vr"] == "TM"
    assert client.search_for_instances(search_filters={"BitsAllocated": "8"})[0]["00280100"] == {
        "vr": "US", "Value": [8]}  # fmt: skip
    by_date = client.search_for_series(search_filters={"PerformedProcedureStepStartDate": "20260101-20260131"})
    assert {Dataset.from_json(r).StudyInstanceUID for r in by_date} == {STUDY}
    assert {Dataset.from_json(r).StudyInstanceUID for r in
            client.search_for_studies(search_filters={"TimezoneOffsetFromUTC": "+0100"})} == {STUDY}  # fmt: skip


@pytest.mark.slow  # three starts of the server and a rebuild
def test_index_made_before_the_columns_is_filled_by_rebuild_index(tmp_path, lightbox_factory):
    server = lightbox_factory()
    first_admin(server)
    store(server, tmp_path)
    server.stop()
    with sqlite3.connect(server.data / "index.sqlite") as db:  # the index as an older Lightbox made it
        for table, columns in NEW_COLUMNS.items():
            for column in columns:
                db.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    server.start()  # the columns come back, empty in the old rows
    assert defaults(client_of(server)) == {STUDY: ("", "", "", None), PLAIN: ("", "", "", None)}
    server.stop()
    rebuilt = server.cli("rebuild-index")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    server.start()
    assert defaults(client_of(server)) == EXPECTED
