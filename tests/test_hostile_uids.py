"""UIDs built to escape the storage area or break the index: refused, nothing written, and the
server goes on serving.  UIDs that are merely non-conformant (hex letters, leading zeros) are
harmless, since no UID reaches a path: accepted, flagged in the index, and served as stored."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import config as pydicom_config
from pydicom import dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from support.dicomgen import make_dataset, write
from support.qr import findscu
from support.scu import NO_RESPONSE, echo, rows, store
from support.tools import dcmtk

SUCCESS = 0x0000
LONG_UID = "1." + ".".join(["12345"] * 11) + ".1"  # digits and dots, 70 characters
HOSTILE = {
    "dotdot": "../../x",
    "long": LONG_UID,
    "empty": "",
    "absolute": "/etc/x",
    "control": "1.2.3\x01.4",
    "non_ascii": "1.2.3\u00e9",
}
# Seen from real devices (Orthanc and DCMTK store them): accepted and flagged.
NONCONFORMANT = {
    "SOPInstanceUID": "1.2.826.0.1.3680043.2.1125.1a2b3c4d5e6f",  # hex letters
    "SeriesInstanceUID": "1.2.040.0012.3",  # leading zeros
    "StudyInstanceUID": "1.2.3..99999999999999999999999999999999999999999",  # an empty and a 41-digit component
}
UID_FIELDS = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
# Files Lightbox itself may have under data/ (the server log lives next to it, not in it).
# The spool must be empty once a C-STORE is answered: a refused dataset leaves nothing behind.
ALLOWED = re.compile(
    r"index\.(sqlite(-wal|-shm|-journal)?|lock)|storage/[0-9a-f]{2}/[0-9a-f]{64}\.dcm|tls/(lightbox\.(crt|key)|https-fingerprint)"
)


def refused(status: int) -> bool:
    """A permanent C-STORE failure: 0xA9xx data set does not match SOP class, 0xCxxx cannot
    understand.  (0xA7xx, out of resources, would tell the sender to try again later.)"""
    return status >> 8 == 0xA9 or status >> 12 == 0xC


@pytest.fixture(autouse=True)
def write_invalid_values() -> Iterator[None]:
    """Let pydicom write the hostile values we mean to send."""
    saved = pydicom_config.settings.writing_validation_mode
    pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    pydicom_config.settings.writing_validation_mode = saved


def assert_nothing_stored(server, hostile_values: list[str]) -> None:
    """Nothing indexed, nothing in storage, no path made from a UID, the spool empty."""
    data = server.data
    for dirpath, dirnames, filenames in os.walk(data):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(data).as_posix()
            assert ".." not in Path(rel).parts and "x" not in Path(rel).parts, rel
            for value in hostile_values:
                if value:
                    assert value not in rel and value not in str(path.resolve()), rel
            if path.is_file():
                assert ALLOWED.fullmatch(rel), f"unexpected file under data/: {rel}"
    for escaped in (data.parent / "x", data.parent.parent / "x", Path("/etc/x")):
        assert not escaped.exists(), escaped
    assert not list((data / "storage").rglob("*.dcm")), "a hostile dataset was stored"
    assert server.count() == 0
    assert rows(data, "SELECT COUNT(*) FROM instance") == [(0,)]


def hostile_dataset(field: str, value: str):
    ds = make_dataset(patient_id="HOSTILE")
    setattr(ds, field, value)
    assert str(getattr(ds, field)) == value
    return ds


# The refusals share the module's server: each leaves it empty, as the next one checks again.
@pytest.mark.parametrize("field", UID_FIELDS)
def test_hostile_uids_in_the_dataset_are_refused(server, field: str) -> None:
    """The C-STORE command carries the same UID pynetdicom puts there (for the instance UID:
    the hostile one, where pynetdicom allows it); the dataset carries the hostile value."""
    statuses = {}
    for label, value in HOSTILE.items():
        if field == "SOPInstanceUID" and label in ("long", "empty"):
            continue  # not sendable as the command's UID; see the file-based tests below
        [status] = store(server, [hostile_dataset(field, value)])
        statuses[label] = status
    assert all(refused(s) for s in statuses.values()), {k: hex(v) for k, v in statuses.items()}
    assert echo(server) == SUCCESS
    assert_nothing_stored(server, list(HOSTILE.values()))


def write_with_meta(ds, path: Path, meta_sop_uid: str) -> Path:
    """A Part 10 file whose meta header (and so the C-STORE command) names ``meta_sop_uid``."""
    encoded = DicomBytesIO()
    if hasattr(ds, "file_meta"):
        del ds.file_meta
    dcmwrite(encoded, ds, implicit_vr=False, little_endian=True, enforce_file_format=False)
    body = encoded.getvalue()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = meta_sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    head = DicomBytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    path.write_bytes(head.getvalue() + body)
    assert str(dcmread(path, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID) == meta_sop_uid
    return path


@pytest.mark.parametrize("label", list(HOSTILE))
def test_valid_command_uid_with_hostile_dataset_uid_is_refused(server, tmp_path: Path, label: str) -> None:
    """A valid Affected SOP Instance UID in the command, a hostile UID in the dataset (for the
    SOP Instance UID also a mismatch with the command): refused as well."""
    paths = []
    for field in UID_FIELDS:
        ds = hostile_dataset(field, HOSTILE[label])
        command_uid = generate_uid() if field == "SOPInstanceUID" else str(ds.SOPInstanceUID)
        paths.append(write_with_meta(ds, tmp_path / f"{field}.dcm", command_uid))
    statuses = store(server, paths)
    assert len(statuses) == 3 and all(refused(s) for s in statuses), [hex(s) for s in statuses]
    assert echo(server) == SUCCESS
    assert_nothing_stored(server, list(HOSTILE.values()))


@pytest.mark.parametrize("label", ["dotdot", "absolute", "control"])
def test_hostile_command_uid_with_valid_dataset_is_refused(server, tmp_path: Path, label: str) -> None:
    """The command names a hostile Affected SOP Instance UID, the dataset a valid one."""
    ds = make_dataset(patient_id="HOSTILE")
    path = write_with_meta(ds, tmp_path / "cmd.dcm", HOSTILE[label])
    [status] = store(server, [path])
    assert refused(status), hex(status)
    assert echo(server) == SUCCESS
    assert_nothing_stored(server, list(HOSTILE.values()))


def test_missing_affected_sop_instance_uid_gets_a_failure_status(server) -> None:
    """pynetdicom leaves an empty Affected SOP Instance UID out of the command altogether."""
    [status] = store(server, [hostile_dataset("SOPInstanceUID", "")])
    assert status != NO_RESPONSE and refused(status), hex(status)
    assert echo(server) == SUCCESS
    assert "Traceback" not in server.log()
    assert_nothing_stored(server, list(HOSTILE.values()))  # and no spool file left behind


def test_hostile_uids_over_import_are_rejected(tmp_path: Path) -> None:
    source = tmp_path / "hostile"
    source.mkdir()
    for field in UID_FIELDS:
        for label, value in HOSTILE.items():
            ds = hostile_dataset(field, value)
            meta_uid = (value or generate_uid()) if field == "SOPInstanceUID" else str(ds.SOPInstanceUID)
            write_with_meta(ds, source / f"{field}-{label}.dcm", meta_uid)
    data = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "import", "--data", str(data), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    count = len(UID_FIELDS) * len(HOSTILE)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"imported: 0  already present: 0  rejected: {count}" in proc.stdout
    assert not list((data / "storage").rglob("*.dcm"))
    for dirpath, dirnames, filenames in os.walk(data):
        for name in dirnames + filenames:
            rel = Path(dirpath, name).relative_to(data).as_posix()
            assert ALLOWED.fullmatch(rel) or rel in ("storage", "spool", "tls"), rel


@pytest.mark.slow
def test_nonconformant_uids_are_stored_flagged_and_retrieved_as_stored(lightbox, tmp_path: Path) -> None:
    """A DCMTK storescu batch goes on past a file with hex letters, leading zeros and an
    empty component in its UIDs (a refusal would halt storescu's whole batch); the file is
    flagged in the index, found by C-FIND and retrieved by C-GET under the same UIDs."""
    odd = make_dataset(patient_id="ODD-UIDS")
    for keyword, value in NONCONFORMANT.items():
        setattr(odd, keyword, value)
    paths = [
        write(odd, tmp_path / "sent" / "odd.dcm"),
        write(make_dataset(patient_id="ODD-UIDS"), tmp_path / "sent" / "plain.dcm"),
    ]
    sent = lightbox.storescu(*paths)
    assert sent.returncode == 0 and sent.stderr.count("Received Store Response (Success)") == 2, sent.stderr
    flagged = rows(
        lightbox.data, "SELECT nonconformant_uids FROM instance WHERE sop_uid = ?", NONCONFORMANT["SOPInstanceUID"]
    )
    assert flagged == [("SOPInstanceUID,StudyInstanceUID,SeriesInstanceUID",)]
    assert rows(lightbox.data, "SELECT COUNT(*) FROM instance WHERE nonconformant_uids = ''") == [(1,)]

    for aet, allow in (("FINDSCU", "find"), ("GETSCU", "get")):
        assert (
            lightbox.cli("node", "add", "--aet", aet, "--host", "127.0.0.1", "--port", "1", "--allow", allow).returncode
            == 0
        )
    found = findscu(lightbox, tmp_path / "found", "-S", "QueryRetrieveLevel=IMAGE",
                    f"StudyInstanceUID={NONCONFORMANT['StudyInstanceUID']}", "SOPInstanceUID", "SeriesInstanceUID")  # fmt: skip
    assert [(str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID)) for ds in found] == [
        (NONCONFORMANT["SOPInstanceUID"], NONCONFORMANT["SeriesInstanceUID"])
    ]
    got = tmp_path / "got"
    got.mkdir()
    result = subprocess.run(
        [dcmtk("getscu"), "-aet", "GETSCU", "-aec", lightbox.aet, "-od", str(got),
         "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={NONCONFORMANT['StudyInstanceUID']}",
         "127.0.0.1", str(lightbox.dicom_port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [received] = [dcmread(p) for p in got.iterdir()]
    assert {k: str(received.get(k)) for k in NONCONFORMANT} == NONCONFORMANT
    assert received.file_meta.MediaStorageSOPInstanceUID == NONCONFORMANT["SOPInstanceUID"]
