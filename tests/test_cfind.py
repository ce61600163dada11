"""C-FIND against a running Lightbox: DCMTK findscu (both models, every level, wildcard, range,
UID list, sequence, character sets), pynetdicom (exact statuses, the cap) and a slow raw client
(C-CANCEL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as STUDY_ROOT

from bench.wire import FindClient, encode_identifier
from support.dicomgen import make_dataset, make_study, write
from support.lightbox import LightboxProcess
from support.qr import findscu

PENDING, SUCCESS, CANCELLED = 0xFF00, 0x0000, 0xFE00
OUT_OF_RESOURCES, IDENTIFIER_MISMATCH = 0xA700, 0xA900
MANY = 1500  # instances in one series: a stream long enough to cancel in the middle


def bulk_series(folder: Path, count: int) -> list[Path]:
    """A study of 2020 with one series of ``count`` tiny instances."""
    return make_study(folder, count, patient_id="BULK", patient_name="Bulk^Series", rows=1, columns=1,
                      StudyDate="20200101")  # fmt: skip


def build_corpus(src: Path) -> dict[str, str]:
    """Three patients with accented, plain and Japanese names; returns their study UIDs."""
    item = Dataset()
    item.RequestedProcedureID = "RP-17"
    item.ScheduledProcedureStepID = "SPS-1"
    studies = {
        "P1": make_study(src / "p1", 2, patient_id="P1", patient_name="Müller^Jürgen", modality="CT",
                         SpecificCharacterSet="ISO_IR 100", StudyDate="20240115", StudyTime="083000",
                         AccessionNumber="A-100", StudyDescription="Thorax"),
        "P2": make_study(src / "p2", 1, patient_id="P2", patient_name="Doe^Jane", modality="MR",
                         StudyDate="20240220", StudyTime="141500", AccessionNumber="A-200",
                         ReferringPhysicianName="Smith^Anna", RequestAttributesSequence=[item]),
        "P3": make_study(src / "p3", 1, patient_id="P3", patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう",
                         modality="US", SpecificCharacterSet="ISO_IR 192", StudyDate="20231201",
                         AccessionNumber="A-300"),
        "BULK": bulk_series(src / "bulk", 1),
    }  # fmt: skip
    p2 = dcmread(studies["P2"][0])  # a second series (US) in Jane Doe's study
    write(make_dataset(study_uid=p2.StudyInstanceUID, patient_id="P2", patient_name="Doe^Jane", modality="US",
                       StudyDate="20240220", StudyTime="141500", AccessionNumber="A-200", SeriesNumber=2,
                       ReferringPhysicianName="Smith^Anna"), src / "p2" / "us.dcm")  # fmt: skip
    return {pid: str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID) for pid, files in studies.items()}


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"query_retrieve_from": "any"}


@pytest.fixture(scope="module")
def archive(server, tmp_path_factory) -> tuple[LightboxProcess, dict[str, str]]:
    """The module's server with the corpus imported; its study UIDs by patient."""
    src = tmp_path_factory.mktemp("cfind-src")
    uids = build_corpus(src)
    imported = server.cli("import", str(src))
    assert imported.returncode == 0, imported.stderr
    return server, uids


def pyfind(server: LightboxProcess, identifier: Dataset, model=STUDY_ROOT) -> tuple[list[Dataset], int]:
    """C-FIND with pynetdicom: (pending identifiers, final status)."""
    ae = AE(ae_title="PYFIND")
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    found, final = [], -1
    try:
        for status, ds in assoc.send_c_find(identifier, model, msg_id=7):
            if status is None:
                break  # association aborted or timed out
            if status.Status == PENDING:
                found.append(ds)
            else:
                final = status.Status
    finally:
        assoc.release()
    return found, final


def query(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_study_root_study_level_returns_computed_and_unknown_keys(archive, tmp_path):
    server, uids = archive
    (rsp,) = findscu(
        server, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "PatientID=P2", "PatientName", "StudyDate", "StudyTime",
        "AccessionNumber", "StudyInstanceUID", "ModalitiesInStudy", "SOPClassesInStudy", "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances", "ReferringPhysicianName", "NumberOfPatientRelatedStudies",
        "PatientComments", "Rows",
    )  # fmt: skip
    assert rsp.StudyInstanceUID == uids["P2"]
    assert (rsp.PatientName, rsp.StudyDate, rsp.StudyTime, rsp.AccessionNumber) == (
        "Doe^Jane",
        "20240220",
        "141500",
        "A-200",
    )
    assert list(rsp.ModalitiesInStudy) == ["MR", "US"]
    assert rsp.SOPClassesInStudy == "1.2.840.10008.5.1.4.1.1.7"
    assert (rsp.NumberOfStudyRelatedSeries, rsp.NumberOfStudyRelatedInstances, rsp.NumberOfPatientRelatedStudies) == (
        2,
        2,
        1,
    )
    assert rsp.ReferringPhysicianName == "Smith^Anna"
    assert rsp.RetrieveAETitle == server.aet and rsp.QueryRetrieveLevel == "STUDY"
    assert rsp.PatientComments == "" and rsp.Rows is None  # unknown key; a key below the level
    assert "find model=STUDY_ROOT level=STUDY" in server.log() and "Doe" not in server.log()


def test_patient_root_walks_every_level(archive, tmp_path):
    server, uids = archive
    (patient,) = findscu(server, tmp_path / "p", "-P", "QueryRetrieveLevel=PATIENT", "PatientID=P1", "PatientName",
                         "PatientBirthDate", "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries",
                         "NumberOfPatientRelatedInstances")  # fmt: skip
    assert (patient.NumberOfPatientRelatedStudies, patient.NumberOfPatientRelatedSeries) == (1, 1)
    assert patient.NumberOfPatientRelatedInstances == 2 and patient.PatientBirthDate == "19800101"
    (study,) = findscu(server, tmp_path / "st", "-P", "QueryRetrieveLevel=STUDY", "PatientID=P1", "StudyInstanceUID")
    assert study.StudyInstanceUID == uids["P1"]
    (series,) = findscu(server, tmp_path / "se", "-P", "QueryRetrieveLevel=SERIES", "PatientID=P1",
                        f"StudyInstanceUID={uids['P1']}", "SeriesInstanceUID", "Modality", "NumberOfSeriesRelatedInstances")  # fmt: skip
    assert (series.Modality, series.NumberOfSeriesRelatedInstances, series.PatientID) == ("CT", 2, "P1")
    images = findscu(server, tmp_path / "im", "-P", "QueryRetrieveLevel=IMAGE", "PatientID=P1",
                     f"StudyInstanceUID={uids['P1']}", f"SeriesInstanceUID={series.SeriesInstanceUID}",
                     "SOPInstanceUID", "SOPClassUID", "InstanceNumber", "Rows", "Columns", "AvailableTransferSyntaxUID")  # fmt: skip
    assert sorted(i.InstanceNumber for i in images) == [1, 2]
    assert {(i.Rows, i.Columns, i.AvailableTransferSyntaxUID) for i in images} == {(16, 16, "1.2.840.10008.1.2.1")}


@pytest.mark.parametrize(
    "keys, expected",
    [
        (["PatientName=D*"], {"P2"}),  # wildcard, folded: "d*" matches "doe^jane"
        (["PatientName=doe^jan?"], {"P2"}),
        (["PatientID=P?"], {"P1", "P2", "P3"}),
        (["StudyDate=20240101-20241231"], {"P1", "P2"}),  # closed range
        (["StudyDate=-20231231"], {"P3", "BULK"}),  # open start
        (["StudyDate=20240201-"], {"P2"}),  # open end
        (["StudyDate=20240115", "StudyTime=0800-0900"], {"P1"}),  # time range with partial bounds
        (["ModalitiesInStudy=US"], {"P2", "P3"}),  # any of the study's modalities
        (["ModalitiesInStudy=CT\\MR"], {"P1", "P2"}),
        (["AccessionNumber=a-100"], set()),  # other strings are case-sensitive
        (["ReferringPhysicianName=SMITH*"], {"P2"}),
    ],
)
def test_study_matching(archive, tmp_path, keys, expected):
    server, _ = archive
    found = findscu(server, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "PatientID", *keys)
    assert {r.PatientID for r in found} == expected


def test_uid_list(archive, tmp_path):
    server, uids = archive
    found = findscu(
        server, tmp_path, "-S", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={uids['P1']}\\{uids['P3']}", "PatientID"
    )
    assert {r.PatientID for r in found} == {"P1", "P3"}


def test_sequence_matching_request_attributes(archive, tmp_path):
    server, uids = archive
    found = findscu(server, tmp_path / "hit", "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={uids['P2']}",
                    "RequestAttributesSequence[0].RequestedProcedureID=RP-*", "Modality")  # fmt: skip
    assert [r.Modality for r in found] == ["MR"]
    assert found[0].RequestAttributesSequence[0].RequestedProcedureID == "RP-17"
    missed = findscu(server, tmp_path / "miss", "-S", "QueryRetrieveLevel=SERIES",
                     "RequestAttributesSequence[0].ScheduledProcedureStepID=SPS-2")  # fmt: skip
    assert missed == []


def test_latin1_query_matches_accent_and_case_insensitively_answers_utf8(archive, tmp_path):
    server, _ = archive
    for n, name in enumerate(["M\xfcller*".encode("latin-1"), b"MULLER^JURGEN", b"m\xfcller^j\xfcrgen"]):
        found = findscu(server, tmp_path / str(n), "-S", "QueryRetrieveLevel=STUDY",
                        b"SpecificCharacterSet=ISO_IR 100", b"PatientName=" + name)  # fmt: skip
        assert [r.PatientName for r in found] == ["Müller^Jürgen"], name
        assert found[0].SpecificCharacterSet == "ISO_IR 192"


def test_utf8_japanese_name(archive, tmp_path):
    server, _ = archive
    found = findscu(server, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "SpecificCharacterSet=ISO_IR 192",
                    "PatientName=*山田*".encode())  # fmt: skip
    assert [str(r.PatientName) for r in found] == ["Yamada^Tarou=山田^太郎=やまだ^たろう"]
    ascii_only = findscu(server, tmp_path / "ascii", "-S", "QueryRetrieveLevel=STUDY", "PatientID=P2", "PatientName")
    assert "SpecificCharacterSet" not in ascii_only[0]


def test_study_root_has_no_patient_level(archive):
    server, _ = archive
    found, status = pyfind(server, query("PATIENT", PatientID=""), STUDY_ROOT)
    assert (found, status) == ([], IDENTIFIER_MISMATCH)


@pytest.fixture
def bulk(lightbox_factory, tmp_path) -> tuple[LightboxProcess, str]:
    """A server of its own holding a series of MANY instances; their Study Instance UID."""
    server = lightbox_factory(query_retrieve_from="any")
    files = bulk_series(tmp_path / "bulk", MANY)
    imported = server.cli("import", str(tmp_path / "bulk"))
    assert imported.returncode == 0, imported.stderr
    return server, str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


@pytest.mark.slow  # a series of 1500 instances, made and imported
def test_cancel_stops_the_stream(bulk):
    """A workstation that reads slowly cancels after 5 responses: the stream stops well before
    its end, and the association goes on.  The client is a raw one (bench.wire's) reading
    through a small receive buffer: pynetdicom's reader thread reads eagerly, and the whole
    answer would be in its buffers before it could cancel."""
    server, study_uid = bulk
    identifier = encode_identifier(query("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID="", SOPInstanceUID=""))
    found, status = 0, None
    with FindClient(
        "127.0.0.1", server.dicom_port, "PYFIND", server.aet, STUDY_ROOT, timeout=30, receive_buffer=4096
    ) as client:
        for status in client.find(identifier):
            if status == PENDING:
                found += 1
                if found == 5:
                    client.cancel()
    assert status == CANCELLED
    assert 5 <= found < MANY
    everything, status = pyfind(server, query("IMAGE", StudyInstanceUID=study_uid, SOPInstanceUID=""))
    assert (len(everything), status) == (MANY, SUCCESS)
    assert "outcome=cancelled" in server.log()


def test_more_matches_than_the_cap_are_refused_out_of_resources(lightbox_factory, tmp_path):
    server = lightbox_factory(find_max_results=3, query_retrieve_from="any")
    paths = make_study(tmp_path / "src", 4)
    assert server.storescu(*paths).returncode == 0
    found, status = pyfind(server, query("IMAGE", SOPInstanceUID=""))
    assert (found, status) == ([], OUT_OF_RESOURCES)
    found, status = pyfind(server, query("STUDY", StudyInstanceUID=""))
    assert (len(found), status) == (1, SUCCESS)


def test_unknown_ae_may_not_query_by_default(lightbox, tmp_path):
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(STUDY_ROOT)
    assoc = ae.associate("127.0.0.1", lightbox.dicom_port, ae_title=lightbox.aet)
    try:
        accepted = (
            [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == STUDY_ROOT] if assoc.is_established else []
        )
    finally:
        if assoc.is_established:
            assoc.release()
    assert accepted == []


def test_integer_strings_come_back_as_received(lightbox, tmp_path):
    """IS values are returned as the modality sent them ("04", not "4"), and still match as
    numbers (SeriesNumber=4 finds "04")."""
    ds = make_dataset(patient_id="IS-1", SeriesNumber="04", InstanceNumber="01")
    assert lightbox.storescu(write(ds, tmp_path / "is.dcm")).returncode == 0
    assert (
        lightbox.cli(
            "node", "add", "--aet", "FINDSCU", "--host", "127.0.0.1", "--port", "1", "--allow", "find"
        ).returncode
        == 0
    )
    [series] = findscu(lightbox, tmp_path / "series", "-S", "QueryRetrieveLevel=SERIES",
                       f"StudyInstanceUID={ds.StudyInstanceUID}", "SeriesNumber=4")  # fmt: skip
    assert series["SeriesNumber"].value == "04" and series.data_element("SeriesNumber").VR == "IS"
    [image] = findscu(lightbox, tmp_path / "image", "-S", "QueryRetrieveLevel=IMAGE",
                      f"StudyInstanceUID={ds.StudyInstanceUID}", f"SeriesInstanceUID={ds.SeriesInstanceUID}",
                      "InstanceNumber", "SeriesNumber")  # fmt: skip
    assert (image["InstanceNumber"].value, image["SeriesNumber"].value) == ("01", "04")
