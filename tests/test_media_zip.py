"""A study ZIP as DICOM media, checked by others than its writer: pydicom's FileSet, DCMTK's
dcmdump and dcmmkdir, and Lightbox's own importer, which re-imports it into a fresh archive.
And the probe of issue 14 point 7 (a large study's ZIP took the main process up by its
DICOMDIR before the first byte), bounded."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.fileset import FileSet
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from appliance.archive import Archive, MediaFile, dicomdir
from bench.download import write_study
from bench.procstat import pss_bytes
from support.dicomgen import make_dataset, write
from support.lightbox import LightboxProcess
from support.tools import dcmtk
from support.web import Client, first_admin

NAME = "Ærøskøbing^Zoë Ann"  # odd length in UTF-8 (21 bytes), and not ASCII


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"dicom_workers": 0}


def lightbox(*args: str | Path, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *map(str, args), "--data", str(data)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def odd_study(folder: Path) -> str:
    """Two series: one numbered, one without Series Number whose images have no Instance
    Number; odd-length values everywhere; a UTF-8 patient name.  Returns the study UID."""
    study_uid = generate_uid()
    common = dict(study_uid=study_uid, patient_id="P-ODD", patient_name=NAME, SpecificCharacterSet="ISO_IR 192",
                  AccessionNumber="A-123", StudyDescription="Knee, left — odd", StudyID="007")  # fmt: skip
    numbered = generate_uid()
    for n in range(3):
        write(make_dataset(series_uid=numbered, instance_number=n + 1, seed=n, **common), folder / f"a{n}.dcm")
    bare = generate_uid()
    for n in range(2):
        ds = make_dataset(series_uid=bare, seed=10 + n, **common)
        del ds.SeriesNumber, ds.InstanceNumber
        write(ds, folder / f"b{n}.dcm")
    return study_uid


def download(admin: Client, study_uid: str, into: Path) -> list[str]:
    answer = admin.get(f"/api/studies/{study_uid}/archive.zip", stream=True)
    assert answer.status_code == 200, answer.text
    zip_path = into.with_suffix(".zip")
    zip_path.write_bytes(answer.raw.read())
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.testzip() is None
        zf.extractall(into)
        return zf.namelist()


def test_study_zip_is_media_that_dcmtk_reads_and_lightbox_reimports(server, tmp_path: Path) -> None:
    study_uid = odd_study(tmp_path / "source")
    result = server.cli("import", str(tmp_path / "source"))
    assert result.returncode == 0, result.stdout + result.stderr
    names = download(first_admin(server), study_uid, tmp_path / "media")
    assert names == ["IMAGES/SE000001/IM000001", "IMAGES/SE000001/IM000002", "IMAGES/SE000001/IM000003",
                     "IMAGES/SE000002/IM000001", "IMAGES/SE000002/IM000002", "DICOMDIR"]  # fmt: skip
    media = tmp_path / "media"

    fileset = FileSet(dcmread(media / "DICOMDIR"))  # pydicom follows every offset
    assert len(fileset) == 5
    assert fileset.find_values("PatientName") == [NAME]
    assert sorted(fileset.find_values("StudyDescription")) == ["Knee, left — odd"]
    assert fileset.find_values("SeriesNumber") == [1, 2]  # Type 1: the place on the media when a file has none
    assert [i.InstanceNumber for i in fileset] == [1, 2, 3, 1, 2]

    dump = subprocess.run([dcmtk("dcmdump"), "-q", "+P", "0004,1430", "+P", "0010,0010", "+P", "0020,0011",
                           str(media / "DICOMDIR")], capture_output=True, timeout=60)  # fmt: skip
    assert dump.returncode == 0 and not dump.stderr, dump.stderr
    text = dump.stdout.decode()
    types = [line.split("[", 1)[1].split("]")[0].strip() for line in text.splitlines() if "(0004,1430)" in line]
    assert types == ["PATIENT", "STUDY", "SERIES", "IMAGE", "IMAGE", "IMAGE", "SERIES", "IMAGE", "IMAGE"]
    assert f"[{NAME}]" in text  # ISO_IR 192: the name as UTF-8, unpadded by dcmdump
    assert "(0020,0011) IS [2]" in text

    # dcmmkdir updating a copy: it resolves every offset ("Cannot resolve offset" otherwise),
    # invents any empty Type 1 value with a warning, and checks the files of the numbered
    # series (the others lack Type 1 attributes of their own) against their records.
    copy = tmp_path / "copy"
    shutil.copytree(media, copy)
    check = subprocess.run([dcmtk("dcmmkdir"), "+U", "-nb", "+W", *names[:3]], cwd=copy,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "W:" not in check.stdout + check.stderr and "E:" not in check.stdout + check.stderr, check.stderr

    fresh = tmp_path / "fresh"
    again = lightbox("import", media, data=fresh)  # the importer goes by the DICOMDIR
    assert again.returncode == 0 and "imported: 5" in again.stdout, again.stdout + again.stderr
    original, copy = Archive(server.data), Archive(fresh)
    try:
        key = lambda f: (f.series_uid, f.sop_uid, f.instance_number, f.series_number, f.patient_name)  # noqa: E731
        assert [key(f) for f in copy.media_files(study_uid)] == [key(f) for f in original.media_files(study_uid)]
    finally:
        original.close()
        copy.close()


@pytest.mark.filterwarnings("ignore:The value length")  # the point of the test
def test_a_record_never_outgrows_its_length_field(tmp_path: Path) -> None:
    """A hostile file's 70,000-character description still gives a DICOMDIR that reads: the
    value is cut to what a 16-bit length holds, on a character boundary."""
    f = MediaFile("IMAGES/SE000001/IM000001", "k", 1, "1.2.3.4", SecondaryCaptureImageStorage, ExplicitVRLittleEndian,
                  None, "1.2.3", "OT", None, "1.2", "", "", "é" * 35_000, "", "", "P", "")  # fmt: skip
    path = tmp_path / "DICOMDIR"
    path.write_bytes(b"".join(dicomdir([f])))
    records = dcmread(path).DirectoryRecordSequence
    assert [r.DirectoryRecordType for r in records] == ["PATIENT", "STUDY", "SERIES", "IMAGE"]
    assert records[1].StudyDescription == "é" * 32_767


@pytest.mark.slow
def test_a_large_study_zip_starts_at_once_and_keeps_memory_flat(lightbox_factory, tmp_path: Path) -> None:
    """16,200 instances took the main process up 234 MB (the DICOMDIR built before the first
    byte); here 3,000, read slowly at first: the first entry is an image, and the process
    grows by a few MB, not by the study."""
    count = 3000
    study_uid = write_study(tmp_path / "big", count)
    server: LightboxProcess = lightbox_factory(dicom_workers=0)
    result = server.cli("import", str(tmp_path / "big"))
    assert result.returncode == 0 and f"imported: {count}" in result.stdout, result.stdout + result.stderr
    admin = first_admin(server)
    assert admin.get(f"/api/studies/{study_uid}").status_code == 200  # warm: the study's pages are cached
    assert server.proc is not None
    pid = server.proc.pid
    before = pss_bytes(pid) / 2**20
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak.append(pss_bytes(pid) / 2**20)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        answer = admin.get(f"/api/studies/{study_uid}/archive.zip", stream=True)
        head = answer.raw.read(30)
        assert head[:4] == b"PK\x03\x04"
        name_length = struct.unpack_from("<H", head, 26)[0]
        assert answer.raw.read(name_length) == b"IMAGES/SE000001/IM000001"  # not the DICOMDIR first
        for _ in range(20):  # a slow reader: the server waits on the socket meanwhile
            answer.raw.read(4096)
            time.sleep(0.05)
        rest = answer.raw.read()
    finally:
        done.set()
        sampler.join()
    after = pss_bytes(pid) / 2**20
    assert rest.rfind(b"DICOMDIR") > len(rest) - 2000  # the last entry, named again in the central directory
    grown = max(peak) - before
    assert grown < 20, f"the main process grew by {grown:.1f} MB while sending the ZIP (before {before:.0f} MB)"
    assert after - before < 20, f"the main process kept {after - before:.1f} MB"
