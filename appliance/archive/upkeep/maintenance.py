"""Storage is the source of truth: verify files against the index, rebuild the index from the
files, and reconcile the two at start-up."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import peewee

from appliance.archive.index import CONTENT_MODELS, Change, Instance, Superseded
from appliance.archive.intake import indexing
from appliance.archive.intake.attributes import extract
from appliance.archive.intake.charset import text
from appliance.archive.intake.header import UnreadableHeader, read_header
from appliance.archive.intake.validate import Refusal, check
from appliance.archive.reading.changes import SUPERSEDED_KIND
from appliance.archive.sqlite import folder_of
from appliance.archive.storage import Storage, StoredFile
from appliance.archive.writelock import WriteLock

LOG = logging.getLogger("lightbox.maintenance")

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class VerifyReport:
    checked: int = 0
    mismatched: list[str] = field(default_factory=list)  # SOP Instance UIDs whose hash differs
    missing: list[str] = field(default_factory=list)  # SOP Instance UIDs whose file is gone

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.missing


@dataclass
class ReconcileReport:
    indexed: list[str] = field(default_factory=list)  # file keys (re)indexed from the files
    unindexable: list[str] = field(default_factory=list)  # file keys that cannot be indexed (kept on disk)
    missing_files: list[str] = field(default_factory=list)  # SOP UIDs whose file is gone, row removed
    spool_cleared: int = 0

    @property
    def repaired(self) -> bool:
        return bool(self.indexed or self.unindexable or self.missing_files)


def verify(storage: Storage, progress: Progress | None = None) -> VerifyReport:
    report = VerifyReport()
    total = Instance.select().count()
    rows = Instance.select(Instance.sop_uid, Instance.file_key, Instance.sha256).tuples().iterator()
    for done, (sop_uid, key, sha) in enumerate(rows, 1):  # streamed: memory does not grow with the archive
        try:
            actual = storage.hash(key)
        except FileNotFoundError:
            report.missing.append(sop_uid)
        else:
            if actual != sha:
                report.mismatched.append(sop_uid)
        report.checked += 1
        if progress:
            progress(done, total)
    return report


def index_file(storage: Storage, key: str) -> None:
    """Add one stored file to the index (caller holds the write lock and a transaction)."""
    path = storage.path(key)
    header = read_header(path)
    nonconformant = check(header)
    stat = os.stat(path)
    indexing.add_instance(
        extract(header.dataset, None, nonconformant),
        StoredFile(key, stat.st_size, storage.hash(key)),
        str(header.transfer_syntax),
        indexing.provenance(header.meta),
        stat.st_mtime,
    )


def _by_received_time(storage: Storage, keys: Iterable[str]) -> list[str]:
    # Oldest first, so that "first seen" decisions (patient identity) come out as they did.
    return sorted(keys, key=lambda k: (os.stat(storage.path(k)).st_mtime_ns, k))


def rebuild_index(
    storage: Storage, db: peewee.Database, write_lock: WriteLock, stable_age: float, progress: Progress | None = None
) -> ReconcileReport:
    """Drop every content row and index the stored files again, oldest first (originals kept
    after an identity edit stay out)."""
    keys = _by_received_time(storage, set(storage.keys()) - _superseded_keys())
    report = ReconcileReport()
    with write_lock, db.atomic("IMMEDIATE"):
        for model in CONTENT_MODELS:
            model.delete().execute()
        for done, key in enumerate(keys, 1):
            _index_or_report(storage, key, report)
            if progress:
                progress(done, len(keys))
        indexing.mark_stable(time.time() - stable_age)
        indexing.record_change("index_rebuilt")
    return report


def reconcile(storage: Storage, db: peewee.Database, write_lock: WriteLock) -> ReconcileReport:
    """Start-up check: index files that have no row, drop rows whose file is gone (recorded)."""
    report = ReconcileReport(spool_cleared=storage.clear_spool())
    orphans: list[str] = []
    missing: list[str] = []
    # One top-level folder at a time, so memory stays at ~1/256 of the archive's keys.
    for folder in _top_level_folders(storage):
        on_disk = set(storage.keys(folder))
        known = {
            k
            for (k,) in Instance.select(Instance.file_key)
            .where((Instance.file_key >= folder + "/") & (Instance.file_key < folder + "0"))  # "0" follows "/"
            .tuples()
        }
        orphans += on_disk - known - _superseded_keys(folder)
        missing += known - on_disk
    with write_lock, db.atomic("IMMEDIATE"):
        for key in _by_received_time(storage, orphans):
            _index_or_report(storage, key, report)
        for instance in Instance.select().where(Instance.file_key.in_(sorted(missing))):
            report.missing_files.append(instance.sop_uid)
            indexing.remove_instance(instance, "instance_missing")
            indexing.record_incident("file_missing", "stored file vanished; row removed", instance.sop_uid)
    if report.repaired:
        LOG.warning(
            "reconcile indexed=%d unindexable=%d missing_files=%d",
            len(report.indexed),
            len(report.unindexable),
            len(report.missing_files),
        )
    return report


def _top_level_folders(storage: Storage) -> list[str]:
    """Every top-level folder that holds stored files or that index rows point into."""
    on_disk = {entry.name for entry in os.scandir(storage.root) if entry.is_dir()}
    prefix = folder_of(Instance.file_key)
    in_index = {p for (p,) in Instance.select(prefix).distinct().tuples()}
    return sorted(on_disk | in_index)


def _superseded_keys(folder: str = "") -> set[str]:
    query = Superseded.select(Superseded.file_key)
    if folder:
        query = query.where((Superseded.file_key >= folder + "/") & (Superseded.file_key < folder + "0"))
    return {k for (k,) in query.tuples()}


def _index_or_report(storage: Storage, key: str, report: ReconcileReport) -> None:
    try:
        with Change._meta.database.atomic():  # a savepoint: one bad file does not undo the rest
            try:
                index_file(storage, key)
            except peewee.IntegrityError:
                _supersede_older_version(storage, key)
        report.indexed.append(key)
    except (UnreadableHeader, Refusal, peewee.IntegrityError) as exc:
        LOG.error("unindexable_file key=%s reason=%s", key, exc)
        report.unindexable.append(key)


def _supersede_older_version(storage: Storage, key: str) -> None:
    """Two stored files with one SOP Instance UID: an original and its edited version whose
    Superseded row was lost with the index.  Files are indexed oldest first, so the one at
    ``key`` is the newer: it becomes the instance, the other is kept as Superseded."""
    sop_uid = text(read_header(storage.path(key)).dataset, "SOPInstanceUID")
    older = Instance.get_or_none(Instance.sop_uid == sop_uid)
    if older is None:
        raise peewee.IntegrityError(f"{key}: not indexable (duplicate file key?)")
    seq = indexing.remove_instance(older, SUPERSEDED_KIND)
    index_file(storage, key)
    Superseded.create(
        sop_uid=sop_uid, sop_class_uid=older.sop_class_uid, transfer_syntax=older.transfer_syntax,
        file_key=older.file_key, size=older.size, sha256=older.sha256,
        received_at=older.received_at, superseded_at=time.time(), change_seq=seq,
    )  # fmt: skip
    LOG.warning("superseded_on_rebuild sop=%s kept=%s", sop_uid, older.file_key)
