"""``Ingest.batch`` (STOW-RS's group commit) against a real archive: each dataset judged as if it
came alone (refusals, duplicates, a repeat inside the batch, the replace policy), the rows of the
batch in one committed transaction, and a full disk at every step of a batch leaving nothing
half-stored and claiming nothing that is not indexed."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from pydicom.uid import generate_uid

from appliance.archive import (
    Archive,
    ArchiveOptions,
    IngestResult,
    Origin,
    Outcome,
    Received,
    Spooled,
    build_meta,
    encode_meta,
    part10_meta,
    storage,
)
from support.dicomgen import make_dataset, make_study, write

ORIGIN = Origin("dicomweb", address="127.0.0.1")


def rows(data: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(data / "index.sqlite")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()  # now: a connection left to the garbage collector holds the WAL's space


def files_match_rows(data: Path) -> None:
    indexed = dict(rows(data, "SELECT file_key, size FROM instance"))
    root = data / "storage"
    stored = {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*.dcm")}
    assert stored == indexed


def counts_consistent(data: Path) -> None:
    for study_id, num_series, num_instances in rows(data, "SELECT id, num_series, num_instances FROM study"):
        series = rows(data, f"SELECT id, num_instances FROM series WHERE study_id = {study_id}")
        assert num_series == len(series)
        assert num_instances == sum(n for _, n in series)
        for series_id, n in series:
            assert rows(data, f"SELECT COUNT(*) FROM instance WHERE series_id = {series_id}") == [(n,)]
    for patient_id, num_studies, num_instances in rows(data, "SELECT id, num_studies, num_instances FROM patient"):
        studies = rows(data, f"SELECT num_instances FROM study WHERE patient_id = {patient_id}")
        assert num_studies == len(studies) > 0
        assert num_instances == sum(n for (n,) in studies)


def mixed_parts(folder: Path) -> tuple[list[Path], list[Path]]:
    """(stored before, the batch): new instances of one study, a file that is not DICOM, an
    instance already stored with the same bytes and one with other bytes, one sent twice in the
    batch with the same bytes and one twice with other bytes, one of another study."""
    study, series = generate_uid(), generate_uid()
    same = dict(study_uid=study, series_uid=series, patient_id="BATCH")
    new = make_study(folder / "new", 6, rows=64, columns=64, **same)
    before = [write(make_dataset(sop_uid=uid, seed=50 + i, **same), folder / f"before{i}.dcm")
              for i, uid in enumerate((generate_uid(), generate_uid()))]  # fmt: skip
    again_same = before[0]
    again_other = write(make_dataset(sop_uid=str(_uid(before[1])), seed=99, **same), folder / "other.dcm")
    twice = _uid(new[2])
    twice_other = write(make_dataset(sop_uid=twice, seed=77, **same), folder / "twice-other.dcm")
    junk = folder / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"not a dataset")
    elsewhere = make_study(folder / "elsewhere", 1, patient_id="BATCH")[0]
    batch = [new[0], junk, again_same, new[1], new[2], again_other, new[3], new[2], new[4], twice_other,
             elsewhere, new[5]]  # fmt: skip
    return before, batch


def _uid(path: Path) -> str:
    from pydicom import dcmread

    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def outcomes(results: list[IngestResult]) -> list[tuple]:
    return [(r.outcome, r.reason, r.sop_uid, r.new_study, r.study_uid, r.series_uid, r.sop_class) for r in results]


def index_content(data: Path) -> list[tuple]:
    """What the index says, without times and row ids."""
    return rows(
        data,
        "SELECT i.sop_uid, i.file_key, i.sha256, s.series_uid, s.num_instances, st.study_uid, st.num_instances,"
        " st.num_series, p.patient_id, p.num_instances FROM instance i JOIN series s ON s.id = i.series_id"
        " JOIN study st ON st.id = s.study_id JOIN patient p ON p.id = st.patient_id ORDER BY i.sop_uid",
    )


@pytest.mark.parametrize("policy", ["keep-first", "replace"])
def test_a_batch_judges_each_dataset_as_one_after_the_other(tmp_path, policy):
    """The same datasets through one batch and through single ingests (C-STORE's way): the
    same results, rows, files, change log and incidents."""
    before, batch = mixed_parts(tmp_path / "src")
    study_uid = _uid_study(batch[0])
    found = {}
    for way in ("batch", "single"):
        data = tmp_path / way
        with Archive(data, ArchiveOptions(duplicate_policy=policy, min_free_mb=0)) as archive:
            for path in before:
                assert archive.ingest(path, ORIGIN).outcome is Outcome.STORED
            if way == "batch":
                results = archive.ingest.batch([Received(p, ORIGIN, None, study_uid) for p in batch])
            else:
                results = [archive.ingest(p, ORIGIN, None, study_uid) for p in batch]
        files_match_rows(data)
        counts_consistent(data)
        found[way] = (
            outcomes(results),
            index_content(data),
            rows(data, "SELECT kind, study_uid, series_uid, sop_uid FROM change ORDER BY seq"),
            rows(data, "SELECT kind, detail, sop_uid FROM incident ORDER BY id"),
        )
    assert found["batch"] == found["single"]
    kinds = [r[0] for r in found["batch"][0]]
    duplicate_other = Outcome.REPLACED if policy == "replace" else Outcome.DUPLICATE_KEPT_FIRST
    assert kinds == [Outcome.STORED, Outcome.REFUSED_UNREADABLE, Outcome.ALREADY_PRESENT, Outcome.STORED,
                     Outcome.STORED, duplicate_other, Outcome.STORED, Outcome.ALREADY_PRESENT, Outcome.STORED,
                     duplicate_other, Outcome.REFUSED_MISMATCH, Outcome.STORED]  # fmt: skip
    assert len(found["batch"][3]) == 2  # duplicate_differs, for the two "other bytes"


def _uid_study(path: Path) -> str:
    from pydicom import dcmread

    return str(dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def test_a_batch_is_one_transaction_committed_before_its_results(tmp_path):
    """Twelve new instances: one COMMIT, a savepoint each, one fsync of each folder."""
    files = make_study(tmp_path / "src", 12, rows=32, columns=32)
    with Archive(tmp_path / "data", ArchiveOptions(min_free_mb=0)) as archive:
        archive.ingest(make_study(tmp_path / "first", 1)[0], ORIGIN)  # the connection and tables are warm
        statements: list[str] = []
        connection = archive.db.connection()
        connection.set_trace_callback(statements.append)
        synced: list[str] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:  # observe (and still do) every fsync
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        os.fsync = fsync
        try:
            results = archive.ingest.batch([Received(p, ORIGIN) for p in files])
        finally:
            os.fsync = real_fsync
            connection.set_trace_callback(None)
    assert [r.outcome for r in results] == [Outcome.STORED] * 12
    verbs = [s.split()[0].upper() for s in statements if s.split()[0].upper() in ("BEGIN", "COMMIT", "SAVEPOINT")]
    assert verbs == ["BEGIN"] + ["SAVEPOINT"] * 12 + ["COMMIT"]
    root = tmp_path / "data" / "storage"
    folders = [p for p in synced if os.path.isdir(p) and Path(p) != root]  # the root: when a folder is made
    assert sorted(folders) == sorted({str(root / key.split("/")[0]) for key in stored_keys(tmp_path / "data")[1:]})
    assert len([p for p in synced if not os.path.isdir(p)]) == 12  # every file its own fsync


def stored_keys(data: Path) -> list[str]:
    return [key for (key,) in rows(data, "SELECT file_key FROM instance ORDER BY id")]


PAGE = 4096


def set_free(mount: Path, filler: Path, target: int) -> None:
    st = os.statvfs(mount)
    delta = st.f_bavail * st.f_frsize - target
    if delta > 0:
        with open(filler, "ab") as f:
            f.write(b"\0" * delta)
    elif delta < 0:
        os.truncate(filler, filler.stat().st_size + delta)


def test_a_full_disk_at_every_step_of_a_batch_leaves_nothing_half_stored(small_tmpfs, tmp_path):
    """A batch of eight instances offered with one more page free each time: whatever the step
    that runs out of space (the reserve, a file, the index's WAL, the commit), every result is
    stored-and-indexed or 0xA700-and-gone, never claimed without its row and file."""
    files = make_study(tmp_path / "src", 8, rows=48, columns=48)  # ~5 KB each: two pages
    filler = small_tmpfs / "filler.bin"
    mixed: list[set[str]] = []  # the reasons of each batch
    for pages in range(0, 200):
        data = small_tmpfs / f"data{pages}"
        filler.write_bytes(b"")
        with Archive(data, ArchiveOptions(min_free_mb=0)) as archive:
            set_free(small_tmpfs, filler, pages * PAGE)
            results = archive.ingest.batch([Received(p, ORIGIN) for p in files])
        stored = {r.sop_uid for r in results if r.outcome is Outcome.STORED}
        for r in results:
            assert r.outcome in (Outcome.STORED, Outcome.OUT_OF_RESOURCES), (pages, r)
        mixed.append({r.reason for r in results if not r.ok})
        assert {uid for (uid,) in rows(data, "SELECT sop_uid FROM instance")} == stored, pages
        files_match_rows(data)
        counts_consistent(data)
        assert list((data / "spool").iterdir()) == []
        if len(stored) == len(files):
            break
        filler.unlink()
        shutil.rmtree(data)
    assert len(stored) == len(files), "never all stored"
    # Refused by the reserve check (before a file is written), and by the index that could not
    # grow (the files of the batch placed before are removed again, none is claimed).
    reasons = set().union(*mixed)
    assert {"disk full: free space below the reserve", "disk full while indexing"} <= reasons, mixed


def spooled_parts(archive: Archive, files: list[Path]) -> list[Received]:
    """Each file as STOW-RS spools it: behind the meta header Lightbox stores, hashed."""
    parts = []
    for path in files:
        data = path.read_bytes()
        meta, offset = part10_meta(io.BytesIO(data))
        keys = ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID")
        body = encode_meta(build_meta(*(meta[k] for k in keys), ORIGIN, meta)) + data[offset:]
        spool = archive.storage.spool_path()
        spool.write_bytes(body)
        parts.append(Received(spool, ORIGIN, Spooled(hashlib.sha256(body).hexdigest(), len(body))))
    return parts


def test_a_spooled_batch_flushes_its_files_at_once_in_order(tmp_path):
    """STOW-RS parts (spooled): every file fsynced once, several at a time, before any is
    renamed into storage; their reception times follow the parts' order; a file whose fsync
    fails is refused alone, as a failed write."""
    files = make_study(tmp_path / "src", 12, rows=32, columns=32)
    with Archive(tmp_path / "data", ArchiveOptions(min_free_mb=0)) as archive:
        parts = spooled_parts(archive, files)
        broken = parts[5].path
        events: list[tuple[str, str]] = []  # (what, file), in order
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            target = os.readlink(f"/proc/self/fd/{fd}")
            events.append(("fsync", target))
            if target == str(broken):
                raise OSError(errno.EIO, "injected")
            real_fsync(fd)

        def replace(src: Any, dst: Any) -> None:
            events.append(("rename", str(src)))
            real_replace(src, dst)

        os.fsync, os.replace = fsync, replace
        threads: set[str] = set()
        real_fsync_dir = storage.fsync_dir
        try:
            with mock.patch.object(storage, "fsync_dir", lambda d: (threads.add(threading.current_thread().name),
                                                                    real_fsync_dir(d))):  # fmt: skip
                results = archive.ingest.batch(parts)
        finally:
            os.fsync, os.replace = real_fsync, real_replace
    assert [r.outcome for r in results] == [Outcome.STORED] * 5 + [Outcome.FAILED] + [Outcome.STORED] * 6
    spool_fsyncs = [f for what, f in events if what == "fsync" and f.startswith(str(tmp_path / "data" / "spool"))]
    assert sorted(spool_fsyncs) == sorted([str(p.path) for p in parts] + [str(broken)])  # the broken one: tried again
    first_rename = next(i for i, (what, _) in enumerate(events) if what == "rename")
    assert {f for what, f in events[:first_rename] if what == "fsync"} >= {str(p.path) for p in parts}
    assert any(name.startswith("fsync") for name in threads)  # the folders too, in the flushing threads
    keys = stored_keys(tmp_path / "data")
    times = [os.stat(tmp_path / "data" / "storage" / key).st_mtime_ns for key in keys]
    assert len(keys) == 11 and times == sorted(times) and len(set(times)) == 11
