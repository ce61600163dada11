"""`lightbox import`: folders, zip files and CD/USB media, through the one ingest path.

Each test runs the real command (`python -m appliance import --data DIR PATHS`) and reads the
summary it prints and the index it leaves behind.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from support.dicomgen import dataset_bytes, make_dataset, make_study, write
from support.tools import dcmtk

SUMMARY = re.compile(
    r"imported: (?P<imported>\d+)\s+already present: (?P<already>\d+)\s+"
    r"rejected: (?P<rejected>\d+)\s+skipped \(not DICOM\): (?P<skipped>\d+)"
)


def lightbox(*args: str | Path, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *map(str, args), "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_import(data: Path, *paths: Path) -> tuple[subprocess.CompletedProcess, dict[str, int], dict[str, int]]:
    """Run `lightbox import`; return the process, the summary counts and {reason: count}."""
    proc = lightbox("import", *paths, data=data)
    match = SUMMARY.search(proc.stdout)
    assert match, f"no summary line in output:\n{proc.stdout}\n{proc.stderr}"
    counts = {k: int(v) for k, v in match.groupdict().items()}
    reasons = {m[2]: int(m[1]) for m in re.finditer(r"^\s+rejected (\d+): (.*)$", proc.stdout, re.M)}
    return proc, counts, reasons


def summary(imported: int = 0, already: int = 0, rejected: int = 0, skipped: int = 0) -> dict[str, int]:
    return {"imported": imported, "already": already, "rejected": rejected, "skipped": skipped}


def stored_files(data: Path) -> list[Path]:
    return sorted(p for p in (data / "storage").rglob("*") if p.is_file())


def index_rows(data: Path) -> dict[str, list[tuple]]:
    """Every content row of the index, without row ids; parents named by their UIDs/identity."""
    db = sqlite3.connect(data / "index.sqlite")
    try:

        def columns(table: str, drop: set[str]) -> list[str]:
            names = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            assert names, f"table {table} missing"
            return [n for n in names if n not in drop]

        patient_cols = columns("patient", {"id"})
        study_cols = columns("study", {"id", "patient_id"})
        series_cols = columns("series", {"id", "study_id"})
        instance_cols = columns("instance", {"id", "series_id"})
        identity = "p.patient_id, p.issuer, p.name_norm, p.birth_date"

        def rows(sql: str) -> list[tuple]:
            return sorted(db.execute(sql).fetchall(), key=repr)

        return {
            "patient": rows(f"SELECT {', '.join('p.' + c for c in patient_cols)} FROM patient p"),
            "study": rows(
                f"SELECT {', '.join('s.' + c for c in study_cols)}, {identity} "
                "FROM study s JOIN patient p ON s.patient_id = p.id"
            ),
            "series": rows(
                f"SELECT {', '.join('se.' + c for c in series_cols)}, s.study_uid "
                "FROM series se JOIN study s ON se.study_id = s.id"
            ),
            "instance": rows(
                f"SELECT {', '.join('i.' + c for c in instance_cols)}, se.series_uid "
                "FROM instance i JOIN series se ON i.series_id = se.id"
            ),
        }
    finally:
        db.close()


def stored_path(data: Path, sop_uid: str) -> Path:
    db = sqlite3.connect(data / "index.sqlite")
    try:
        row = db.execute("SELECT file_key FROM instance WHERE sop_uid = ?", (sop_uid,)).fetchone()
    finally:
        db.close()
    assert row is not None, f"{sop_uid} not indexed"
    return data / "storage" / row[0]


def assert_rebuild_gives_same_index(data: Path) -> None:
    before = index_rows(data)
    proc = lightbox("rebuild-index", data=data)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = index_rows(data)
    for table in ("patient", "study", "series", "instance"):
        assert after[table] == before[table], f"{table} rows differ after rebuild-index"


def sop_uid_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


@pytest.mark.slow
def test_import_folder_tree_skips_non_dicom_and_is_idempotent(tmp_path: Path) -> None:
    source = tmp_path / "export"
    first = make_study(source / "PAT1" / "STUDY1" / "SERIES1", 3, patient_id="P1", patient_name="Alpha^Ann")
    second = make_study(source / "PAT2" / "deeper" / "still" / "deeper", 2, patient_id="P2", patient_name="Beta^Bob")
    (source / "README.TXT").write_text("exported by a viewer\n")
    (source / "PAT1" / "autorun.inf").write_text("[autorun]\nopen=viewer.exe\n")
    (source / "PAT2" / "viewer.exe").write_bytes(b"MZ\x90\x00" + b"\x00" * 200)
    data = tmp_path / "data"

    proc, counts, reasons = run_import(data, source)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert counts == summary(imported=5, skipped=3)
    assert reasons == {}
    assert len(stored_files(data)) == 5
    rows = index_rows(data)
    assert len(rows["patient"]) == 2 and len(rows["study"]) == 2 and len(rows["instance"]) == 5

    # The stored file carries the dataset exactly as it was in the source file.
    for path in first + second:
        assert dataset_bytes(stored_path(data, sop_uid_of(path))) == dataset_bytes(path)

    proc, counts, reasons = run_import(data, source)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert counts == summary(already=5, skipped=3)
    assert len(stored_files(data)) == 5

    assert_rebuild_gives_same_index(data)


@pytest.mark.slow
def test_import_zip_of_instances(tmp_path: Path) -> None:
    files = make_study(tmp_path / "src", 4, patient_id="ZIP-1")
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, path in enumerate(files):
            zf.write(path, f"export/series{i % 2}/{path.name}")
        zf.writestr("export/index.html", "<html>viewer</html>")
        zf.writestr("export/", "")  # a directory entry
    data = tmp_path / "data"

    proc, counts, reasons = run_import(data, archive)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert counts == summary(imported=4, skipped=1)
    assert reasons == {}
    for path in files:
        assert dataset_bytes(stored_path(data, sop_uid_of(path))) == dataset_bytes(path)
    assert not any((data / "spool").iterdir()), "zip members left in the spool"

    proc, counts, _ = run_import(data, archive)
    assert proc.returncode == 0
    assert counts == summary(already=4, skipped=1)
    assert_rebuild_gives_same_index(data)


def make_media(root: Path, count: int) -> list[Path]:
    """A CD/USB layout: ISO 9660 names (upper case, no extension) and a DICOMDIR from dcmmkdir."""
    series = root / "DICOM" / "ST000001" / "SE000001"
    series.mkdir(parents=True)
    files = []
    for path in make_study(root / "staging", count, patient_id="CD-1", patient_name="Media^Mia"):
        files.append(path.rename(series / f"IM{len(files):06d}"))
    shutil.rmtree(root / "staging")
    proc = subprocess.run(
        [dcmtk("dcmmkdir"), "+r", "+id", str(root), "+D", str(root / "DICOMDIR"), "DICOM"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record_ids = [
        list(r.ReferencedFileID)
        for r in pydicom.dcmread(root / "DICOMDIR").DirectoryRecordSequence
        if "ReferencedFileID" in r
    ]
    assert sorted(record_ids) == [["DICOM", "ST000001", "SE000001", f"IM{i:06d}"] for i in range(count)]
    # What else ships on a CD: a viewer and an autorun file, not referenced by the DICOMDIR.
    (root / "AUTORUN.INF").write_text("[autorun]\nopen=VIEWER\\VIEWER.EXE\n")
    (root / "VIEWER").mkdir()
    (root / "VIEWER" / "VIEWER.EXE").write_bytes(b"MZ" + b"\x00" * 300)
    return files


@pytest.mark.slow
def test_import_media_with_dicomdir(tmp_path: Path) -> None:
    media = tmp_path / "cdrom"
    files = make_media(media, 3)
    originals = {sop_uid_of(p): dataset_bytes(p) for p in files}
    data = tmp_path / "data"

    proc, counts, reasons = run_import(data, media)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert counts == summary(imported=3)
    assert reasons == {}
    for uid, body in originals.items():
        assert dataset_bytes(stored_path(data, uid)) == body

    # The DICOMDIR itself may be named on the command line.
    proc, counts, _ = run_import(data, media / "DICOMDIR")
    assert proc.returncode == 0
    assert counts == summary(already=3)
    assert_rebuild_gives_same_index(data)


def test_file_listed_in_dicomdir_but_missing_is_reported(tmp_path: Path) -> None:
    media = tmp_path / "cdrom"
    files = make_media(media, 3)
    media_files = sorted(p for p in (media / "DICOM").rglob("*") if p.is_file())
    media_files[0].unlink()  # a scratched CD or a half-copied USB stick
    data = tmp_path / "data"

    proc, counts, reasons = run_import(data, media)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert counts == summary(imported=len(files) - 1, rejected=1)
    assert any("No such file" in reason for reason in reasons), reasons


def test_import_media_mounted_with_lower_case_names(tmp_path: Path) -> None:
    """Linux mounts ISO 9660 without Rock Ridge in lower case; the DICOMDIR still says upper."""
    media = tmp_path / "cdrom"
    files = make_media(media, 2)
    originals = {sop_uid_of(p): dataset_bytes(p) for p in files}
    for path in sorted(media.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        path.rename(path.with_name(path.name.lower()))
    assert (media / "dicomdir").exists() and (media / "dicom" / "st000001" / "se000001" / "im000000").exists()
    data = tmp_path / "data"

    proc, counts, reasons = run_import(data, media)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert counts == summary(imported=2)
    for uid, body in originals.items():
        assert dataset_bytes(stored_path(data, uid)) == body


@pytest.mark.slow
def test_broken_files_are_rejected_with_reasons(tmp_path: Path) -> None:
    source = tmp_path / "mixed"
    good = write(make_dataset(patient_id="GOOD"), source / "good.dcm")

    def truncated(name: str, cut) -> None:
        """A half-copied file of an instance of its own (so no duplicate logic is involved)."""
        path = write(make_dataset(patient_id="BAD"), tmp_path / "whole" / name)
        body = path.read_bytes()
        (source / name).write_bytes(body[: cut(body, len(body) - len(dataset_bytes(path)))])

    truncated("truncated_in_meta.dcm", lambda body, meta_end: meta_end - 40)
    # Cut inside the dataset header, after the UIDs: in the value of (0028,0010) Rows.
    truncated("truncated_in_header.dcm", lambda body, meta_end: body.index(b"\x28\x00\x10\x00US") + 9)
    # Cut inside Pixel Data.
    truncated("truncated_in_pixels.dcm", lambda body, meta_end: len(body) - 100)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid UIDs we write on purpose
        write(make_dataset(sop_uid="1.2/3", patient_id="BAD"), source / "bad_sop_uid.dcm")  # a path separator
        write(make_dataset(study_uid="1." + "2" * 70, patient_id="BAD"), source / "bad_study_uid.dcm")  # over 64
    (source / "notes.txt").write_text("not DICOM\n")
    data = tmp_path / "data"

    proc, counts, reasons = run_import(data, source)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert counts == summary(imported=1, rejected=5, skipped=1)

    def rejected_for(*words: str) -> int:
        return sum(n for reason, n in reasons.items() if any(w in reason for w in words))

    assert rejected_for("SOPInstanceUID is not a usable UID") == 1, reasons
    assert rejected_for("StudyInstanceUID is not a usable UID") == 1, reasons
    assert rejected_for("truncated", "unreadable", "no DICOM dataset") == 3, reasons
    assert rejected_for("truncated file: Pixel Data") == 1, reasons
    for name in ("truncated_in_meta", "truncated_in_header", "truncated_in_pixels", "bad_sop_uid", "bad_study_uid"):
        assert f"failed: {source / name}.dcm" in proc.stdout
    assert "failed: " + str(good) not in proc.stdout

    # Only the good instance is stored and indexed.
    assert len(stored_files(data)) == 1
    rows = index_rows(data)
    assert [r for r in rows["patient"] if "BAD" in r] == []
    assert len(rows["instance"]) == 1
    assert dataset_bytes(stored_path(data, sop_uid_of(good))) == dataset_bytes(good)

    # A second run: the good one is already present, the broken ones are still rejected.
    proc, counts, _ = run_import(data, source)
    assert proc.returncode == 1
    assert counts == summary(already=1, rejected=5, skipped=1)
    assert_rebuild_gives_same_index(data)


@pytest.mark.slow
def test_rebuild_index_keeps_identity_conflicts_and_counts(tmp_path: Path) -> None:
    """Rebuild from files alone: the same patients (conflicts included), studies, counts."""
    source = tmp_path / "src"
    study_uid = generate_uid()
    make_study(source / "a", 2, study_uid=study_uid, patient_id="SAME", patient_name="First^Name")
    make_study(source / "b", 1, patient_id="SAME", patient_name="Other^Name")
    make_study(source / "c", 2, patient_id="SAME", patient_name="FIRST^NAME", birth_date="19800101")
    make_study(source / "d", 3, patient_id="", patient_name="Anon^", modality="CT")
    data = tmp_path / "data"
    proc, counts, _ = run_import(data, source)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert counts == summary(imported=8)
    rows = index_rows(data)
    assert len(rows["patient"]) == 3
    assert len(rows["study"]) == 4
    assert_rebuild_gives_same_index(data)
