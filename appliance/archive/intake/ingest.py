"""The one way in.  C-STORE, STOW-RS, import (and later uploads) all call ``Ingest``.

Order of work, so that nothing acknowledged can be lost and nothing refused stays behind:
parse the header (never the pixels), validate, write the stored file (fsync file and
directory), index it in one committed transaction, and only then report success.  If the
index write fails, the file is removed again.

``Ingest.batch`` does the same for several datasets whose results are wanted together (a
STOW-RS request): their folders fsynced once, their rows in one transaction with a savepoint
each, every result only after that commit.  A single ingest (C-STORE) is its batch of one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

import peewee

from appliance.archive.index import Instance
from appliance.archive.intake import indexing
from appliance.archive.intake.attributes import IndexFields, extract
from appliance.archive.intake.header import Header, Origin, UnreadableHeader, encode_meta, read_header, stored_meta
from appliance.archive.intake.validate import Problem, Refusal, check
from appliance.archive.sqlite import disk_full
from appliance.archive.storage import Storage, StoredFile, file_digest, free_bytes, is_out_of_space
from appliance.archive.writelock import WriteLock

LOG = logging.getLogger("lightbox.ingest")


class Outcome(Enum):
    STORED = "stored"
    ALREADY_PRESENT = "already present"  # same SOP Instance UID, same bytes
    DUPLICATE_KEPT_FIRST = "duplicate kept first"  # same UID, other bytes, policy keep-first
    REPLACED = "replaced"  # same UID, other bytes, policy replace
    REFUSED_UNREADABLE = "refused: unreadable"
    REFUSED_INVALID = "refused: invalid"
    REFUSED_MISMATCH = "refused: mismatch"
    OUT_OF_RESOURCES = "out of resources"
    FAILED = "failed"

    @property
    def ok(self) -> bool:
        return self in (Outcome.STORED, Outcome.ALREADY_PRESENT, Outcome.DUPLICATE_KEPT_FIRST, Outcome.REPLACED)


_REFUSALS = {Problem.INVALID: Outcome.REFUSED_INVALID, Problem.MISMATCH: Outcome.REFUSED_MISMATCH}


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    reason: str = ""
    sop_uid: str = ""
    new_study: bool = False  # the instance began a study the index did not have
    study_uid: str = ""  # the instance's identity, once its header was read
    series_uid: str = ""
    sop_class: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome.ok


@dataclass(frozen=True)
class Spooled:
    """A received file written by a front door that already put Lightbox's own meta header
    first and hashed every byte: when the header checks out, ingest moves it into storage
    instead of copying it (the bytes are written once)."""

    sha256: str
    size: int


@dataclass(frozen=True)
class IngestOptions:
    duplicate_policy: str = "keep-first"  # or "replace"
    min_free_bytes: int = 200 * 1024 * 1024


@dataclass(frozen=True)
class Received:
    """One dataset for ``Ingest.batch``: the file, what the door knows (``Ingest.__call__``)."""

    path: Path
    origin: Origin
    spooled: Spooled | None = None
    study_uid: str | None = None


# Parts indexed in one transaction at most: the write lock (C-STORE's commits wait for it) is
# held while their rows are written, ~1 ms each.
MAX_BATCH = 32


@dataclass
class _Part:
    """A received dataset whose header checked out, on its way through a batch."""

    received: Received
    header: Header
    fields: IndexFields
    identity: dict[str, str]
    result: IngestResult | None = None  # decided
    stored: StoredFile | None = None  # in storage, not indexed yet
    received_at: float = 0.0
    provenance: dict[str, str] = field(default_factory=dict)  # who sent it, from the stored meta header
    indexed: bool = False  # its rows are written in the batch's transaction
    new_study: bool = False
    replaced_key: str | None = None
    lost_to: str | None = None  # the file of a row another door committed meanwhile

    @property
    def sop_uid(self) -> str:
        return str(self.fields.instance["sop_uid"])


class Ingest:
    def __init__(self, storage: Storage, write_lock: WriteLock, db: peewee.Database, options: IngestOptions) -> None:
        self.storage = storage
        self.write_lock = write_lock
        self.db = db
        self.options = options

    def __call__(
        self, path: Path, origin: Origin, spooled: Spooled | None = None, study_uid: str | None = None
    ) -> IngestResult:
        """Store the DICOM file at ``path`` (left in place unless ``spooled`` lets it move).
        What the door knows (who sent it, the sender's charset quirk) comes in ``origin``; what
        the door does with the result (a device's counts and errors) is the door's.  With
        ``study_uid`` (STOW-RS to one study), an instance of another study is refused.
        A batch of one: its own fsyncs and its own commit before the result (C-STORE)."""
        return self.batch([Received(path, origin, spooled, study_uid)])[0]

    def batch(self, received: Sequence[Received]) -> list[IngestResult]:
        """Store several datasets whose results are wanted together (a STOW-RS request): each
        is judged as if it came alone, but the durability work is shared, so that the results,
        in order, come only after ONE commit: each file fsynced, each folder fsynced once, the
        rows in one transaction with a savepoint per dataset (one that fails rolls back alone).
        A group holds one SOP Instance UID once at most (a repeat begins the next group), so a
        duplicate is judged against what the earlier datasets left, as one after the other."""
        parts: list[_Part | IngestResult] = [self._read(item) for item in received]
        group: list[_Part] = []
        for part in parts:
            if isinstance(part, _Part):
                if len(group) >= MAX_BATCH or any(p.sop_uid == part.sop_uid for p in group):
                    self._store(group)
                    group = []
                group.append(part)
        self._store(group)
        results = [part if isinstance(part, IngestResult) else _final(part) for part in parts]
        for item, result in zip(received, results, strict=True):
            _log(item.origin, result)
        return results

    def _read(self, item: Received) -> _Part | IngestResult:
        """Header (never the pixels), validation, the values to index; or the refusal."""
        try:
            header = read_header(item.path)
            nonconformant = check(header)
            fields = extract(header.dataset, item.origin.charset_override, nonconformant)
        except UnreadableHeader as exc:
            return IngestResult(Outcome.REFUSED_UNREADABLE, str(exc)[:200])
        except Refusal as exc:
            return IngestResult(_REFUSALS[exc.problem], exc.reason)
        except Exception as exc:  # a value pydicom cannot convert: refuse, never crash
            return IngestResult(Outcome.REFUSED_UNREADABLE, f"undecodable attribute: {exc}"[:200])
        sop_uid = fields.instance["sop_uid"]
        identity = dict(sop_uid=sop_uid, study_uid=fields.study["study_uid"], series_uid=fields.series["series_uid"],
                        sop_class=fields.instance["sop_class_uid"])  # fmt: skip
        if item.study_uid is not None and identity["study_uid"] != item.study_uid:
            return IngestResult(Outcome.REFUSED_MISMATCH, "the instance belongs to another study", **identity)
        if nonconformant:
            LOG.warning("uid_nonconformant sop=%s keywords=%s (accepted, flagged)", sop_uid, ",".join(nonconformant))
        return _Part(item, header, fields, identity)

    def _store(self, group: list[_Part]) -> None:
        """Put the group's files into storage (folders fsynced once), then index them."""
        spooled = [part.received.path for part in group if part.received.spooled is not None]
        # Flushed together only when all are spooled: the reception times stay in the group's order.
        flushed = self.storage.flush_spooled(spooled) if len(group) == len(spooled) > 1 else set()
        placed = [part for part in group if self._place(part, part.received.path in flushed)]
        try:
            self.storage.sync_folders(part.stored.key for part in placed if part.stored is not None)
        except OSError as exc:
            for part in placed:
                part.result = _write_failure(exc, part.sop_uid)
            self._discard(placed)
            return
        if placed:
            self._index(placed)

    def _place(self, part: _Part, flushed: bool) -> bool:
        """Judge a known SOP Instance UID, check the reserve, write (or move) the file into
        storage with its own fsync (done already when ``flushed``); False when that decided
        the part's result."""
        sop_uid, path, spooled = part.sop_uid, part.received.path, part.received.spooled
        existing_key = indexing.file_key_of(sop_uid)
        if existing_key is not None:
            part.result = self._duplicate(sop_uid, existing_key, path, part.header, part.received.origin)
            if part.result is not None:
                return False

        # A spooled file is already on this disk (it is renamed into storage); others are copied.
        needed = 0 if spooled is not None else os.path.getsize(path)
        if free_bytes(self.storage.root) - needed < self.options.min_free_bytes:
            part.result = IngestResult(Outcome.OUT_OF_RESOURCES, "disk full: free space below the reserve", sop_uid)
            return False
        meta = stored_meta(part.header, part.received.origin)
        part.provenance = indexing.provenance(meta)
        head = encode_meta(meta)
        try:
            if spooled is not None and _begins_with(path, head, part.header.dataset_offset):
                part.stored = self.storage.adopt(path, spooled.sha256, spooled.size, sync_folder=False, flushed=flushed)
            else:
                with open(path, "rb") as body:
                    part.stored = self.storage.write(head, body, part.header.dataset_offset, sync_folder=False)
        except OSError as exc:
            part.result = _write_failure(exc, sop_uid)
            return False
        part.received_at = os.stat(self.storage.path(part.stored.key)).st_mtime
        return True

    def _index(self, placed: list[_Part]) -> None:
        """The rows of every placed part in one transaction, a savepoint each; a part's result
        is decided only once the transaction is committed (or has failed)."""
        try:
            with self.write_lock, self.db.atomic("IMMEDIATE"):
                for part in placed:
                    try:
                        with self.db.atomic():  # a savepoint
                            self._index_one(part)
                    except _StoredMeanwhile as race:
                        part.lost_to = race.key
                    except Exception as exc:
                        part.indexed = False  # its savepoint is rolled back
                        if not self.db.connection().in_transaction:
                            raise  # SQLite rolled the whole transaction back (a full disk): all fail
                        part.result = _index_failure(exc, part.sop_uid)
        except Exception as exc:  # the transaction (or its commit) failed: no row of it is there
            for part in placed:
                if part.result is None and part.lost_to is None:
                    part.indexed = False
                    part.result = _index_failure(exc, part.sop_uid)
        self._discard([part for part in placed if part.result is not None and not part.result.ok])
        self.storage.remove_many(part.replaced_key for part in placed if part.indexed and part.replaced_key)
        for part in placed:
            if part.indexed:
                outcome = Outcome.REPLACED if part.replaced_key is not None else Outcome.STORED
                part.result = IngestResult(outcome, "", part.sop_uid, part.new_study, part.identity["study_uid"])
            elif part.lost_to is not None:
                # Another door indexed this UID while we were writing: judge it as a duplicate.
                self._discard([part])
                part.result = self._duplicate(
                    part.sop_uid, part.lost_to, part.received.path, part.header, part.received.origin
                ) or IngestResult(Outcome.FAILED, "", part.sop_uid)

    def _index_one(self, part: _Part) -> None:
        assert part.stored is not None
        sop_uid = part.sop_uid
        replaced_key = indexing.file_key_of(sop_uid)
        if replaced_key is not None:
            if replaced_key == part.stored.key:  # the very same file, stored meanwhile
                part.result = IngestResult(Outcome.ALREADY_PRESENT, "", sop_uid)
                return
            if self.options.duplicate_policy != "replace":
                raise _StoredMeanwhile(replaced_key)
        if not self.storage.path(part.stored.key).exists():  # removed by a failed store of the same bytes
            part.result = IngestResult(Outcome.FAILED, "the stored file went away before it was indexed", sop_uid)
            return
        if replaced_key is not None:
            indexing.remove_instance(Instance.get(Instance.sop_uid == sop_uid), "instance_replaced")
        part.new_study = indexing.add_instance(
            part.fields,
            part.stored,
            str(part.header.transfer_syntax),
            part.provenance,
            part.received_at,
        )
        part.replaced_key = replaced_key
        part.indexed = True

    def _discard(self, parts: list[_Part]) -> None:
        """Remove the stored files of parts that are not indexed, but not a file that an index
        row refers to (the very same bytes, stored by another request meanwhile).  Under the
        write lock, as ``_index_one``'s check that its file is still there."""
        with self.write_lock:
            self.storage.remove_many(
                part.stored.key
                for part in parts
                if part.stored is not None and indexing.file_key_of(part.sop_uid) != part.stored.key
            )

    def _duplicate(
        self, sop_uid: str, existing_key: str, path: Path, header: Header, origin: Origin
    ) -> IngestResult | None:
        """Same SOP Instance UID: None to go on and replace, or the result to report now."""
        stored_path = self.storage.path(existing_key)
        try:
            stored_header = read_header(stored_path)
            with open(path, "rb") as new, open(stored_path, "rb") as old:
                same = file_digest(new, header.dataset_offset) == file_digest(old, stored_header.dataset_offset)
        except (OSError, UnreadableHeader):
            same = False  # the stored copy is missing or damaged: let replace/verify deal with it
        if same:
            return IngestResult(Outcome.ALREADY_PRESENT, "", sop_uid)
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            indexing.record_incident(
                "duplicate_differs",
                f"same SOP Instance UID with different bytes; policy {self.options.duplicate_policy}",
                sop_uid,
                origin.calling_ae,
                origin.address,
            )
        if self.options.duplicate_policy == "replace":
            return None
        return IngestResult(Outcome.DUPLICATE_KEPT_FIRST, "different bytes under a known SOP Instance UID", sop_uid)


def _begins_with(path: Path, head: bytes, dataset_offset: int) -> bool:
    """True when the file's meta header is already exactly the one we would write."""
    if dataset_offset != len(head):
        return False
    with open(path, "rb") as f:
        return f.read(len(head)) == head


class _StoredMeanwhile(Exception):
    """Rolls back a part's savepoint when a concurrent store won the race (to ``key``)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _final(part: _Part) -> IngestResult:
    assert part.result is not None
    uids = part.identity
    return replace(part.result, sop_uid=uids["sop_uid"], study_uid=uids["study_uid"], series_uid=uids["series_uid"],
                   sop_class=uids["sop_class"])  # fmt: skip


def _write_failure(exc: OSError, sop_uid: str) -> IngestResult:
    if is_out_of_space(exc):
        return IngestResult(Outcome.OUT_OF_RESOURCES, "disk full while writing", sop_uid)
    LOG.error("store_failed sop=%s", sop_uid, exc_info=exc)
    return IngestResult(Outcome.FAILED, f"cannot write: {exc.strerror}", sop_uid)


def _index_failure(exc: Exception, sop_uid: str) -> IngestResult:
    if disk_full(exc):
        return IngestResult(Outcome.OUT_OF_RESOURCES, "disk full while indexing", sop_uid)
    LOG.error("index_failed sop=%s", sop_uid, exc_info=exc)
    return IngestResult(Outcome.FAILED, f"index error: {exc}"[:200], sop_uid)


def _log(origin: Origin, result: IngestResult) -> None:
    LOG.log(
        logging.INFO if result.ok else logging.WARNING,
        "ingest outcome=%s via=%s calling_ae=%r address=%s sop=%s%s%s",
        result.outcome.name.lower(),
        origin.via,
        origin.calling_ae,
        origin.address or "-",
        result.sop_uid or "-",
        f" user={origin.user!r}" if origin.user else "",
        f" reason={result.reason!r}" if result.reason else "",
    )
