"""The one way in.  C-STORE, STOW-RS, import (and later uploads) all call ``Ingest``.

Order of work, so that nothing acknowledged can be lost and nothing refused stays behind:
parse the header (never the pixels), validate, write the stored file (fsync file and
directory), index it in one committed transaction, and only then report success.  If the
index write fails, the file is removed again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

import peewee

from appliance.archive.index import Instance
from appliance.archive.intake import indexing
from appliance.archive.intake.attributes import IndexFields, extract
from appliance.archive.intake.header import Header, Origin, UnreadableHeader, encode_meta, read_header, stored_meta
from appliance.archive.intake.validate import Problem, Refusal, check
from appliance.archive.sqlite import disk_full
from appliance.archive.storage import Storage, file_digest, free_bytes, is_out_of_space
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
        ``study_uid`` (STOW-RS to one study), an instance of another study is refused."""
        result = self._ingest(path, origin, spooled, study_uid)
        level = logging.INFO if result.ok else logging.WARNING
        LOG.log(
            level,
            "ingest outcome=%s via=%s calling_ae=%r address=%s sop=%s%s",
            result.outcome.name.lower(),
            origin.via,
            origin.calling_ae,
            origin.address or "-",
            result.sop_uid or "-",
            f" reason={result.reason!r}" if result.reason else "",
        )
        return result

    def _ingest(self, path: Path, origin: Origin, spooled: Spooled | None, study_uid: str | None) -> IngestResult:
        try:
            header = read_header(path)
            nonconformant = check(header)
            fields = extract(header.dataset, origin.charset_override, nonconformant)
        except UnreadableHeader as exc:
            return IngestResult(Outcome.REFUSED_UNREADABLE, str(exc)[:200])
        except Refusal as exc:
            return IngestResult(_REFUSALS[exc.problem], exc.reason)
        except Exception as exc:  # a value pydicom cannot convert: refuse, never crash
            return IngestResult(Outcome.REFUSED_UNREADABLE, f"undecodable attribute: {exc}"[:200])
        sop_uid = fields.instance["sop_uid"]
        identity = dict(sop_uid=sop_uid, study_uid=fields.study["study_uid"], series_uid=fields.series["series_uid"],
                        sop_class=fields.instance["sop_class_uid"])  # fmt: skip
        if study_uid is not None and identity["study_uid"] != study_uid:
            return IngestResult(Outcome.REFUSED_MISMATCH, "the instance belongs to another study", **identity)
        if nonconformant:
            LOG.warning("uid_nonconformant sop=%s keywords=%s (accepted, flagged)", sop_uid, ",".join(nonconformant))
        return replace(self._store(path, origin, spooled, header, fields), **identity)

    def _store(
        self, path: Path, origin: Origin, spooled: Spooled | None, header: Header, fields: IndexFields
    ) -> IngestResult:
        sop_uid = fields.instance["sop_uid"]

        existing_key = indexing.file_key_of(sop_uid)
        if existing_key is not None:
            duplicate = self._duplicate(sop_uid, existing_key, path, header, origin)
            if duplicate is not None:
                return duplicate

        # A spooled file is already on this disk (it is renamed into storage); others are copied.
        needed = 0 if spooled is not None else os.path.getsize(path)
        if free_bytes(self.storage.root) - needed < self.options.min_free_bytes:
            return IngestResult(Outcome.OUT_OF_RESOURCES, "disk full: free space below the reserve", sop_uid)
        meta = stored_meta(header, origin)
        head = encode_meta(meta)
        try:
            if spooled is not None and _begins_with(path, head, header.dataset_offset):
                stored = self.storage.adopt(path, spooled.sha256, spooled.size)
            else:
                with open(path, "rb") as body:
                    stored = self.storage.write(head, body, header.dataset_offset)
        except OSError as exc:
            if is_out_of_space(exc):
                return IngestResult(Outcome.OUT_OF_RESOURCES, "disk full while writing", sop_uid)
            LOG.exception("store_failed sop=%s", sop_uid)
            return IngestResult(Outcome.FAILED, f"cannot write: {exc.strerror}", sop_uid)

        received_at = os.stat(self.storage.path(stored.key)).st_mtime
        replaced_key: str | None = None
        new_study = False
        try:
            with self.write_lock, self.db.atomic("IMMEDIATE"):
                replaced_key = indexing.file_key_of(sop_uid)
                if replaced_key is not None:
                    if replaced_key == stored.key:  # the very same file, stored meanwhile
                        return IngestResult(Outcome.ALREADY_PRESENT, "", sop_uid)
                    if self.options.duplicate_policy != "replace":
                        raise _StoredMeanwhile()
                    indexing.remove_instance(Instance.get(Instance.sop_uid == sop_uid), "instance_replaced")
                new_study = indexing.add_instance(
                    fields, stored, str(header.transfer_syntax), indexing.provenance(meta), received_at
                )
        except _StoredMeanwhile:
            # Another association indexed this UID while we were writing: judge it as a duplicate.
            self.storage.remove(stored.key)
            assert replaced_key is not None  # the row that won the race
            return self._duplicate(sop_uid, replaced_key, path, header, origin) or IngestResult(
                Outcome.FAILED, "", sop_uid
            )
        except Exception as exc:
            self.storage.remove(stored.key)
            if disk_full(exc):
                return IngestResult(Outcome.OUT_OF_RESOURCES, "disk full while indexing", sop_uid)
            LOG.exception("index_failed sop=%s", sop_uid)
            return IngestResult(Outcome.FAILED, f"index error: {exc}"[:200], sop_uid)
        if replaced_key is not None:
            self.storage.remove(replaced_key)
            return IngestResult(Outcome.REPLACED, "", sop_uid, new_study, fields.study["study_uid"])
        return IngestResult(Outcome.STORED, "", sop_uid, new_study, fields.study["study_uid"])

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
    """Rolls back the index transaction when a concurrent store won the race."""
