"""``Archive``: storage area, index and registry behind one object (see ``__init__`` for the map)."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peewee import fn

from appliance.archive import index, sqlite
from appliance.archive.index import (
    Change,
    Instance,
    Patient,
    Series,
    Study,
)
from appliance.archive.intake import importer, indexing
from appliance.archive.intake.ingest import Ingest, IngestOptions
from appliance.archive.performed import PerformedSteps
from appliance.archive.reading import browse, changes, lookup, media, query, retrieval
from appliance.archive.reading.rows import InstanceFile
from appliance.archive.reading.worklist import WorklistOptions
from appliance.archive.registry import auditchain
from appliance.archive.registry import models as registry_models
from appliance.archive.registry.audit import AuditLog
from appliance.archive.registry.devices import DeviceTable
from appliance.archive.registry.discovered import DiscoveredTable
from appliance.archive.registry.forwarding import Forwarding
from appliance.archive.registry.nodes import NodeTable
from appliance.archive.registry.shares import ShareStore
from appliance.archive.registry.site import SiteProfile
from appliance.archive.registry.users import SessionStore, UserTable
from appliance.archive.sqlite import open_database
from appliance.archive.storage import Storage, free_bytes
from appliance.archive.upkeep import corrections, maintenance, restore
from appliance.archive.upkeep.corrections import Corrections
from appliance.archive.worklist import Worklist
from appliance.archive.writelock import WriteLock

LOG = logging.getLogger("lightbox.archive")


@dataclass(frozen=True)
class ArchiveOptions:
    duplicate_policy: str = "keep-first"
    min_free_mb: int = 200
    stable_age: float = 60.0
    find_fold_names: bool = True
    find_max_results: int = 10000
    worklist_keep_days: int = 1  # see reading/worklist.py
    worklist_keep_done: bool = False
    device_policy: str = "learning"  # see devices.py
    max_devices: int = 200
    forward_retry_initial: float = 30.0  # see forwarding.py
    session_idle_s: float = 1800.0
    session_max_s: float = 43200.0
    page_cache_kib: int = 8000  # SQLite's page cache, per thread: each thread has its own connection


class Archive:
    """Storage area + index + the rules that keep them in step.  One per process."""

    def __init__(self, data_dir: Path, options: ArchiveOptions | None = None) -> None:
        self.options = options or ArchiveOptions()
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.storage = Storage(self.data_dir)
        self.db = open_database(
            self.data_dir / "index.sqlite", index.MODELS + registry_models.MODELS, self.options.page_cache_kib
        )
        # One writer: SQLite serialises writers anyway; the lock keeps our threads from
        # queueing inside SQLite's busy handler.
        self.write_lock = WriteLock(self.data_dir / "index.lock")
        self.ingest = Ingest(
            self.storage,
            self.write_lock,
            self.db,
            IngestOptions(self.options.duplicate_policy, self.options.min_free_mb * 1024 * 1024),
        )
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            if made := browse.ensure_search_index():
                LOG.info("search_index_%s studies=%d", made, Study.select().count())
            auditchain.seal_unchained()  # events of a Lightbox before the chain
        self.nodes = NodeTable(self.db, self.write_lock)
        self.users = UserTable(self.db, self.write_lock)
        self.sessions = SessionStore(self.db, self.write_lock, self.options.session_idle_s, self.options.session_max_s)
        self.audit = AuditLog(self.db, self.write_lock)
        self.shares = ShareStore(self.db, self.write_lock)  # links to one study (shares.py)
        self.devices = DeviceTable(
            self.db, self.write_lock, self.nodes, self.options.device_policy, self.options.max_devices
        )
        self.discovered = DiscoveredTable(self.db, self.write_lock)
        self.forwarding = Forwarding(self.db, self.write_lock, self.nodes, self.options.forward_retry_initial)
        self.site = SiteProfile(self.db, self.write_lock, self.data_dir / "timezone")
        # Delete, fix identity, merge: see corrections.py.
        self.corrections = Corrections(
            self.storage, self.db, self.write_lock, self.audit, self.options.min_free_mb * 1024 * 1024
        )
        self.worklist = Worklist(self.db, self.write_lock, WorklistOptions(
            self.options.worklist_keep_days, self.options.worklist_keep_done,
            self.options.find_fold_names, self.options.find_max_results,
        ))  # fmt: skip
        self.performed = PerformedSteps(self.db, self.write_lock, self.worklist)  # MPPS: performed.py
        self._counts: tuple[int, dict[str, int]] | None = None  # (change seq, totals)

    def instances_for_retrieve(self, level: str, keys: dict[str, Sequence[str]]) -> list[InstanceFile]:
        """The instances a C-MOVE/C-GET identifier names (see ``retrieval.py``)."""
        return retrieval.instances_for_retrieve(level, keys)

    def find(self, model: str, level: str, identifier: Mapping[str, Any]) -> Generator[dict[str, Any], None, None]:
        """C-FIND/QIDO-RS matches, streamed (see ``query.py``); raises query.QueryError or
        query.TooManyMatches before the first match."""
        options = query.FindOptions(self.options.find_fold_names, self.options.find_max_results)
        return query.find(model, level, identifier, options)

    def find_page(
        self, model: str, level: str, identifier: Mapping[str, Any], limit: int, offset: int = 0
    ) -> tuple[Generator[dict[str, Any], None, None], bool]:
        """QIDO-RS matches: at most ``limit`` from ``offset`` on, in a stable order, and whether
        more follow (see ``query.find_page``); raises query.QueryError before the first match."""
        options = query.FindOptions(self.options.find_fold_names, 0)
        return query.find_page(model, level, identifier, options, limit, offset)

    def list_studies(self, study_filter: browse.StudyFilter) -> tuple[list[browse.StudyRow], bool]:
        """One page of the web UI's study list, and whether more follow (see ``browse.py``)."""
        return browse.list_studies(study_filter)

    def modalities(self) -> list[str]:
        """The modalities present in the archive (for the study list's filter)."""
        return browse.modalities()

    def study_labels(self, study_uids: Iterable[str]) -> dict[str, browse.StudyLabel]:
        """Patient, description and date of each of these studies still in the archive."""
        return browse.study_labels(study_uids)

    def study_detail(self, study_uid: str) -> browse.StudyDetail | None:
        return browse.study_detail(study_uid)

    def study_instance_count(self, study_uid: str) -> int | None:
        row = Study.get_or_none(Study.study_uid == study_uid)
        return row.num_instances if row is not None else None

    def study_of_series(self, series_uid: str) -> str | None:
        return browse.study_of_series(series_uid)

    def media_files(self, study_uid: str, series_uid: str | None = None) -> list[media.MediaFile]:
        """A study's (or series') instances with their names on DICOM media (see ``media.py``)."""
        return media.media_files(study_uid, series_uid)

    def recent_changes(self, limit: int = 20) -> list[Change]:
        return list(Change.select().order_by(Change.seq.desc()).limit(limit))

    def instance(self, sop_uid: str) -> lookup.InstanceEntry | None:
        """Where one instance's file is, and its size in frames, rows and columns."""
        return lookup.instance(sop_uid)

    def series_entry(self, series_uid: str) -> lookup.SeriesEntry | None:
        """A series with its study, patient and instances in display order (for viewers)."""
        return lookup.series(series_uid)

    def middle_instance(self, series_uid: str) -> lookup.InstanceEntry | None:
        """The instance halfway through a series in display order (its thumbnail)."""
        return lookup.middle_instance(series_uid)

    def file_path(self, file_key: str) -> Path:
        return self.storage.path(file_key)

    def counts(self) -> dict[str, int]:
        """Totals of the index.  Counting scans whole tables (~40 ms at 100,000 instances), so
        the answer is kept until the change log moves: every content change appends to it."""
        seq = self.last_change()
        cached = self._counts
        if cached is not None and cached[0] == seq:
            return dict(cached[1])
        counts = {
            "patients": Patient.select().count(),
            "studies": Study.select().count(),
            "series": Series.select().count(),
            "instances": Instance.select().count(),
            "bytes": Instance.select(fn.COALESCE(fn.SUM(Instance.size), 0)).scalar(),
        }
        self._counts = (seq, counts)
        return dict(counts)

    def free_bytes(self) -> int:
        return free_bytes(self.storage.root)

    def disk_usage(self) -> dict[str, int]:
        """The storage file system's size and free space, and what the stored files take."""
        usage = shutil.disk_usage(self.storage.root)
        return {"total_bytes": usage.total, "free_bytes": self.free_bytes(), "stored_bytes": self.counts()["bytes"]}

    def last_change(self) -> int:
        return Change.select(fn.COALESCE(fn.MAX(Change.seq), 0)).scalar()

    def mark_stable(self, now: float | None = None) -> list[str]:
        """Studies quiet for ``stable_age`` seconds become stable (a Change each)."""
        cutoff = (time.time() if now is None else now) - self.options.stable_age
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            return indexing.mark_stable(cutoff)

    def verify(self, progress: maintenance.Progress | None = None) -> maintenance.VerifyReport:
        return maintenance.verify(self.storage, progress)

    def rebuild_index(self, progress: maintenance.Progress | None = None) -> maintenance.ReconcileReport:
        self.corrections.finish_removals()
        return maintenance.rebuild_index(self.storage, self.db, self.write_lock, self.options.stable_age, progress)

    def reconcile(self) -> maintenance.ReconcileReport:
        """Start-up: finish interrupted deletions first (their files must not come back as
        orphans), then reconcile files and rows."""
        self.corrections.finish_removals()
        return maintenance.reconcile(self.storage, self.db, self.write_lock)

    def describe(self, level: str, uid: str) -> corrections.Target | None:
        """A study, series or instance with its patient and size (a deletion's confirmation)."""
        return corrections.describe(level, uid)

    def identity_of(self, study_uid: str) -> corrections.Identity | None:
        return corrections.identity_of(study_uid)

    def same_id_patients(self, study_uid: str) -> list[dict[str, Any]]:
        """Other identities under this study's Patient ID (to merge with)."""
        return corrections.same_id_patients(study_uid)

    def studies_of_patient(self, study_uid: str) -> list[str]:
        """Every study of the patient (identity) that ``study_uid`` belongs to, itself included."""
        return corrections.studies_of_patient(study_uid)

    def patient_studies(self, study_uid: str) -> list[browse.StudyRow]:
        """The studies of ``study_uid``'s patient (identity), itself included, newest first."""
        return browse.patient_studies(study_uid)

    def import_paths(self, paths: list[Path], progress: maintenance.Progress | None = None) -> importer.ImportSummary:
        """Import files, folders, zip files and DICOMDIR media through the one ingest path."""
        return importer.run_import(self.ingest, self.storage, paths, progress)

    # Followers of the change log (backup): see ``changes.py``.
    def changes_after(self, seq: int, limit: int = 500) -> list[changes.ChangeRow]:
        return changes.changes_after(seq, limit)

    def cursor(self, name: str) -> int:
        return changes.cursor(name)

    def first_study_from(self, calling_ae: str, after: int = 0) -> str | None:
        """The first study ``calling_ae`` sent after change ``after`` (and still stored)."""
        return changes.first_study_from(calling_ae, after)

    def set_cursor(self, name: str, seq: int) -> None:
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            changes.set_cursor(name, seq)

    def stored_instance(self, sop_uid: str) -> InstanceFile | None:
        return changes.stored_instance(sop_uid)

    def stored_instances(self, study_uid: str | None = None, sop_class_prefix: str = "") -> Iterator[InstanceFile]:
        return changes.stored_instances(study_uid, sop_class_prefix)

    def pending_after(self, seq: int) -> tuple[int, int, float | None]:
        return changes.pending_after(seq)

    def snapshot_index(self, dest: Path) -> int:
        """Copy the index into ``dest`` (a new file); return the newest change it holds."""
        sqlite.snapshot(str(dest))
        return restore.snapshot_change_seq(dest)

    def adopt_restored(self, spooled: Path, file_key: str, sha256: str, size: int) -> None:
        """Put a restored file that its index row describes into storage (see ``restore.py``)."""
        restore.adopt_file(self.storage, spooled, file_key, sha256, size)

    def close_thread_connection(self) -> None:
        """Close the calling thread's index connection (peewee keeps one per thread): a thread
        that ends, e.g. an association's, would otherwise hold its descriptors for a while."""
        if not self.db.is_closed():
            self.db.close()

    def release_thread_cache(self) -> None:
        """Empty the calling thread's index page cache (up to ``page_cache_kib``): a web thread
        keeps the pages of its largest answer so far otherwise."""
        if not self.db.is_closed():
            sqlite.shrink_memory()

    def close(self) -> None:
        self.db.close()
        self.write_lock.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
