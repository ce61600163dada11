"""Modality Worklist: orders made through the JSON API, fetched with DCMTK `findscu -W` and a
pynetdicom SCU (veterinary keys), the same orders answered by DCMTK `wlmscpfs` as an oracle,
C-CANCEL, and images that arrive tied to their order on the study page."""

from __future__ import annotations

import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE

from appliance.archive import Archive
from appliance.archive.intake.charset import normalise_name
from bench.wire import FindClient, encode_identifier
from bench.worklists import WLM_AET, WORKLIST_MODEL, orders, wlmscpfs, write_wl_files
from support.tools import dcmtk
from support.web import send_study

pytestmark = pytest.mark.usefixtures("netns")  # wlmscpfs binds every address

TODAY = date.today()
DAY = [(TODAY + timedelta(days=n)).strftime("%Y%m%d") for n in range(-10, 15)]
D0 = 10  # DAY[D0] is today
SPS = "ScheduledProcedureStepSequence[0]."
RETURNED = ("AccessionNumber", "PatientName", "PatientID", "RequestedProcedureID", SPS + "Modality",
            SPS + "ScheduledStationAETitle", SPS + "ScheduledProcedureStepStartDate",
            SPS + "ScheduledProcedureStepStartTime")  # fmt: skip
PENDING, SUCCESS, CANCELLED = 0xFF00, 0x0000, 0xFE00

# Orders of their own patients (X1..) that the tests below query for exactly; the seeded ones
# (bench.worklists.orders) are for the oracle.
OWN = [
    dict(patient_name="Zürcher^Jürgen", patient_id="X1", modality="US", station_aet="US1", start_date=DAY[D0],
         start_time="0900", species="Canine", breed="Beagle", responsible_person="Smith^John",
         responsible_person_role="OWNER", responsible_organization="Happy Paws", accession="XACC1",
         requested_procedure_description="Abdomen US"),
    dict(patient_name="Zurcher^Anna", patient_id="X2", modality="CR", station_aet="CR1", start_date=DAY[D0 + 1],
         start_time="1000", accession="XACC2"),
    dict(patient_name="Quinn^Jane", patient_id="X3", modality="US", station_aet="US1", start_date=DAY[D0 + 3],
         start_time="1400", accession="XACC3"),
    dict(patient_name="Old^Order", patient_id="X4", modality="US", start_date=DAY[D0 - 5], accession="XACC4"),
]  # fmt: skip


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"query_retrieve_from": "any"}


@pytest.fixture(scope="module")
def made(server, admin) -> list[dict]:
    """OWN and 40 seeded orders, made through the API; X5 made and then cancelled."""
    items = []
    for fields in OWN + orders(40):
        answer = admin.api_post("/api/worklist", **fields)
        assert answer.status_code == 201, answer.text
        items.append(answer.json())
    gone = admin.api_post("/api/worklist", patient_name="Gone^Order", patient_id="X5", modality="US",
                          start_date=DAY[D0], accession="XACC5").json()  # fmt: skip
    assert admin.request("DELETE", f"/api/worklist/{gone['id']}", headers={"X-CSRF-Token": admin.csrf()}).ok
    return items


def findscu_w(port: int, aec: str, out: Path, keys: dict[str, str]) -> list[Dataset]:
    """DCMTK findscu -W: every pending identifier, read back."""
    out.mkdir(parents=True)
    asked = dict.fromkeys(RETURNED, "") | keys
    cmd = [dcmtk("findscu"), "-W", "-aet", "WLTEST", "-aec", aec, "-X", "-od", str(out)]
    for key, value in asked.items():
        cmd += ["-k", f"{key}={value}" if value else key]
    result = subprocess.run(cmd + ["127.0.0.1", str(port)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def accessions(found: list[Dataset]) -> set[str]:
    return {str(ds.AccessionNumber) for ds in found}


@pytest.mark.parametrize(("keys", "expected"), [
    ({SPS + "Modality": "US", "PatientID": "X*"}, {"XACC1", "XACC3"}),
    ({SPS + "ScheduledStationAETitle": "CR1", "PatientID": "X*"}, {"XACC2"}),
    ({SPS + "ScheduledProcedureStepStartDate": f"{DAY[D0]}-{DAY[D0 + 1]}", "PatientID": "X*"}, {"XACC1", "XACC2"}),
    ({SPS + "ScheduledProcedureStepStartDate": f"{DAY[D0 + 2]}-", "PatientID": "X*"}, {"XACC3"}),
    ({"PatientName": "zurch*"}, {"XACC1", "XACC2"}),  # case- and accent-insensitive
    ({"PatientName": "Zürcher^Jürgen"}, {"XACC1"}),
    ({"PatientName": "Q?inn^*"}, {"XACC3"}),
    ({"PatientID": "X2"}, {"XACC2"}),
    ({"AccessionNumber": "XACC3"}, {"XACC3"}),
    ({"AccessionNumber": "XACC1\\XACC3"}, {"XACC1", "XACC3"}),
    ({"PatientID": "X4"}, set()),  # started five days ago: expired (worklist_keep_days=1)
    ({"PatientID": "X5"}, set()),  # cancelled
], ids=["modality", "station", "date-range", "open-range", "name-folded", "name-utf8", "name-wildcard",
        "patient-id", "accession", "accession-list", "expired", "cancelled"])  # fmt: skip
def test_findscu_worklist_matches(server, made, tmp_path, keys, expected):
    if any(not v.isascii() for v in keys.values()):
        keys = {"SpecificCharacterSet": "ISO_IR 192", **keys}
    assert accessions(findscu_w(server.dicom_port, server.aet, tmp_path / "rsp", keys)) == expected


def test_findscu_gets_the_keys_asked_with_the_order_values(server, made, tmp_path):
    (found,) = findscu_w(server.dicom_port, server.aet, tmp_path / "rsp",
                         {"PatientID": "X1", "StudyInstanceUID": "", "RequestedProcedureDescription": "",
                          SPS + "ScheduledProcedureStepID": "", "PatientComments": ""})  # fmt: skip
    step = found.ScheduledProcedureStepSequence[0]
    assert (str(found.PatientName), found.RequestedProcedureDescription, found.StudyInstanceUID) == (
        "Zürcher^Jürgen",
        "Abdomen US",
        made[0]["study_uid"],
    )
    assert (step.Modality, step.ScheduledStationAETitle, step.ScheduledProcedureStepStartDate) == ("US", "US1", DAY[D0])
    assert step.ScheduledProcedureStepStartTime == "0900" and step.ScheduledProcedureStepID == "XACC1"
    assert found.RequestedProcedureID == "XACC1"  # defaults to the accession number
    assert "PatientComments" in found and found.PatientComments == ""  # asked, not kept: empty
    assert "PatientSex" not in found  # not asked, not returned


def test_veterinary_keys_with_pynetdicom(server, made):
    query = Dataset()
    query.PatientID = ""
    query.PatientSpeciesDescription = "Canine"
    query.PatientBreedDescription = ""
    query.ResponsiblePerson = ""
    query.ResponsiblePersonRole = ""
    query.ResponsibleOrganization = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    query.ScheduledProcedureStepSequence[0].Modality = "US"
    ae = AE(ae_title="PYWL")
    ae.add_requested_context(WORKLIST_MODEL)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    try:
        answers = [(status.Status, ds) for status, ds in assoc.send_c_find(query, WORKLIST_MODEL)]
    finally:
        assoc.release()
    assert answers[-1][0] == SUCCESS
    found = {ds.PatientID: ds for status, ds in answers if status == PENDING}
    seeded_canine = {f["patient_id"] for f in orders(40) if f["species"] == "Canine" and f["modality"] == "US"}
    assert set(found) == {"X1"} | seeded_canine
    x1 = found["X1"]
    assert (x1.PatientSpeciesDescription, x1.PatientBreedDescription, str(x1.ResponsiblePerson)) == (
        "Canine",
        "Beagle",
        "Smith^John",
    )
    assert (x1.ResponsiblePersonRole, x1.ResponsibleOrganization) == ("OWNER", "Happy Paws")


# The seeded queries the oracle answers too; each value is the matching keys.
ORACLE_QUERIES = {
    "modality": {SPS + "Modality": "US"},
    "station": {SPS + "ScheduledStationAETitle": "CR1"},
    "today": {SPS + "ScheduledProcedureStepStartDate": DAY[D0]},
    "date-range": {SPS + "ScheduledProcedureStepStartDate": f"{DAY[D0 + 1]}-{DAY[D0 + 3]}"},
    "open-range": {SPS + "ScheduledProcedureStepStartDate": f"{DAY[D0 + 10]}-"},
    "modality-and-range": {SPS + "Modality": "DX", SPS + "ScheduledProcedureStepStartDate": f"-{DAY[D0 + 6]}"},
    "time-range": {SPS + "ScheduledProcedureStepStartTime": "0800-1130"},
    "name-wildcard": {"PatientName": "Doe^*"},
    "name-question-mark": {"PatientName": "Sm?th^*"},
    "name-accented": {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "Müller^*"},
    "name-case": {"PatientName": "doe^*"},
    "patient-id": {"PatientID": "PID000005"},
    "accession": {"AccessionNumber": "ACC0000010"},
    "requested-procedure": {"RequestedProcedureID": "RP000003"},
    "everything": {},
}
# Where wlmscpfs (DCMTK 3.6.7) and Lightbox differ, by the standard: checked to be exactly that.
KNOWN_DIFFERENCES = {
    "name-accented": "Lightbox matches person names accent-insensitively (find_fold_names; PS3.4 C.2.2.2.1 "
    "lets an SCP match PN insensitively); wlmscpfs matches the bytes: Lightbox also finds Muller^.",
    "name-case": "the same for case: Lightbox finds Doe^ for doe^*, wlmscpfs nothing.",
}


def rows(found: list[Dataset]) -> list[tuple[str, ...]]:
    def value(ds: Dataset, key: str) -> str:
        if key.startswith(SPS):
            ds, key = ds.ScheduledProcedureStepSequence[0], key[len(SPS) :]
        text = str(ds.get(key, ""))
        # wlmscpfs sends the files' UTF-8 text without their Specific Character Set (DCMTK's
        # omission): pydicom then reads it as the default repertoire.
        return text.encode("latin-1").decode() if "SpecificCharacterSet" not in ds and not text.isascii() else text

    return sorted(tuple(value(ds, key) for key in RETURNED) for ds in found)


def test_wlmscpfs_answers_the_same(server, made, tmp_path):
    """The open orders Lightbox serves, as .wl files: both answer each query alike (or as
    KNOWN_DIFFERENCES says)."""
    listed = [item for item in made if item["start_date"] >= DAY[D0 - 1]]
    folder = write_wl_files(tmp_path / "wl", listed)
    with wlmscpfs(folder, tmp_path / "wlmscpfs.log") as port:
        for name, keys in ORACLE_QUERIES.items():
            ours = rows(findscu_w(server.dicom_port, server.aet, tmp_path / name / "lightbox", keys))
            theirs = rows(findscu_w(port, WLM_AET, tmp_path / name / "dcmtk", keys))
            assert ours, name  # every query finds something: none is vacuous
            if name not in KNOWN_DIFFERENCES:
                assert ours == theirs, name
                continue
            assert set(theirs) < set(ours), name  # Lightbox finds more, never less
            pattern = normalise_name(keys["PatientName"].rstrip("*"))
            assert all(normalise_name(row[1]).startswith(pattern) for row in ours), name


def test_cancel_stops_a_long_worklist(lightbox_factory, tmp_path):
    """1500 orders; a slow reader cancels after 5 answers."""
    server = lightbox_factory(start=False, query_retrieve_from="any")
    with Archive(server.data) as archive:
        archive.worklist.create_many(orders(1500, days=3))
    server.start()
    query = Dataset()
    query.PatientID = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    query.ScheduledProcedureStepSequence[0].Modality = ""
    found, status = 0, None
    with FindClient("127.0.0.1", server.dicom_port, "PYWL", server.aet, WORKLIST_MODEL, timeout=30,
                    receive_buffer=4096) as client:  # fmt: skip
        for status in client.find(encode_identifier(query)):
            if status == PENDING:
                found += 1
                if found == 5:
                    client.cancel()
    assert status == CANCELLED
    assert 5 <= found < 1500
    assert "model=WORKLIST" in server.log() and "outcome=cancelled" in server.log()


def test_api_roles_validation_and_changes(server, made, admin, viewer):
    listed = viewer.get("/api/worklist").json()["items"]
    assert {"XACC1", "XACC2", "XACC3"} <= {item["accession"] for item in listed}
    assert "XACC4" not in {item["accession"] for item in listed}  # before today: not upcoming
    assert viewer.api_post("/api/worklist", patient_name="Nope^Nope").status_code == 403
    bad = admin.api_post("/api/worklist", patient_name="Bad^Date", start_date="2026-13-45x")
    assert bad.status_code == 400 and "start date" in bad.json()["error"]
    assert admin.api_post("/api/worklist", modality="US").status_code == 400  # no patient
    item = admin.api_post("/api/worklist", patient_name="Patch^Me", patient_id="X6", modality="US",
                          start_date=DAY[D0]).json()  # fmt: skip
    assert item["accession"].startswith("LB") and item["state"] == "SCHEDULED"
    changed = admin.request("PATCH", f"/api/worklist/{item['id']}", json={"modality": "dx", "start_time": "11:15"},
                            headers={"X-CSRF-Token": admin.csrf()})  # fmt: skip
    assert changed.ok and (changed.json()["modality"], changed.json()["start_time"]) == ("DX", "1115")
    assert changed.json()["accession"] == item["accession"]
    assert admin.get("/api/worklist/999999").status_code == 404
    page = viewer.get("/schedule")
    assert page.status_code == 200 and "Zürcher" in page.text and 'id="order-form"' not in page.text
    assert 'id="order-form"' in admin.get("/schedule").text
    audit = admin.get("/api/audit").json()
    assert any("worklist item" in e.get("detail", "") for e in audit.get("events", audit.get("items", [])))


def test_images_arrive_tied_to_their_order(server, made, admin, tmp_path):
    order = made[1]  # XACC2
    study_uid = send_study(server, tmp_path / "src", 2, study_uid=order["study_uid"], patient_id="X2",
                           patient_name="Zurcher^Anna", AccessionNumber="XACC2")  # fmt: skip
    assert study_uid == order["study_uid"]
    detail = admin.get(f"/api/studies/{study_uid}").json()
    (shown,) = detail["orders"]
    assert (shown["accession"], shown["state"], shown["images"]) == ("XACC2", "SCHEDULED", 2)
    assert "images received" in admin.get(f"/studies/{study_uid}").text
    # "Schedule for this patient": the form comes filled from the index's patient
    form = admin.get(f"/schedule?study={study_uid}").text
    assert 'name="patient_id" value="X2"' in form and 'value="Zurcher^Anna"' in form
    picked = admin.get("/schedule?patient=zurcher").text  # the index's patients, folded
    assert "Zurcher" in picked and 'id="patients"' in picked
    answer = admin.post("/schedule", data={"csrf": admin.csrf(), "patient_name": "Zurcher^Anna", "patient_id": "X2",
                                           "modality": "CR", "start_date": TODAY.isoformat(), "start_time": "16:45",
                                           "requested_procedure_description": "Follow-up"}, allow_redirects=False)  # fmt: skip
    assert answer.status_code == 303
    assert any(i["requested_procedure_description"] == "Follow-up" and i["start_time"] == "1645"
               for i in admin.get("/api/worklist").json()["items"])  # fmt: skip
