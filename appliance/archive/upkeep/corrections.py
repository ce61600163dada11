"""Deleting and correcting what is stored: the explicit, audited changes an admin makes.

Delete a study, a series or an instance: in one transaction the rows go (each removal a
Change, so the backup keeps its copy for the retention period), a ``FileRemoval`` journal row
per file and the audit event are written; the files are unlinked after the commit.  A crash in
between leaves the journal, which start-up finishes: a deleted instance never comes back as an
orphan file.

Fix a patient's identity (Patient Name, Patient ID, Issuer, Birth Date) of some studies, or
merge two patients (one patient's studies take the other's identity): every stored file is
rewritten as a new version with the same UIDs (``rewrite.py``: the old values go into its
Original Attributes Sequence), and then, in one transaction, the studies move to the patient
row of the new identity, each instance to its new file, and each original becomes
``Superseded``: kept on disk until the backup has it.  New files are journalled for removal
until that transaction adopts them, so a crash midway leaves the study as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import peewee

from appliance.archive.index import FileRemoval, Instance, Patient, Series, Study, Superseded
from appliance.archive.intake import indexing
from appliance.archive.intake.charset import normalise_name
from appliance.archive.reading.changes import SUPERSEDED_KIND
from appliance.archive.reading.rows import InstanceFile
from appliance.archive.registry import audit
from appliance.archive.registry.audit import AuditLog
from appliance.archive.storage import Storage, free_bytes
from appliance.archive.upkeep.rewrite import CannotRewrite, rewritten
from appliance.archive.writelock import WriteLock

LOG = logging.getLogger("lightbox.corrections")

DELETABLE_LEVELS = ("study", "series", "instance")
IDENTITY_KEYWORDS = {  # DICOM keyword -> Patient column
    "PatientName": "name",
    "PatientID": "patient_id",
    "IssuerOfPatientID": "issuer",
    "PatientBirthDate": "birth_date",
}


class CorrectionError(ValueError):
    """The change is refused; the message says why, for the user."""


@dataclass(frozen=True)
class Target:
    """What a deletion names, described so that a confirmation can name the patient."""

    level: str
    uid: str
    study_uid: str
    patient_name: str
    patient_id: str
    birth_date: str
    study_date: str
    study_description: str
    series: int
    instances: int
    bytes: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def confirmation(self) -> str:
        """What the person deleting must type: the Patient ID, or "delete" when there is none."""
        return self.patient_id or "delete"

    def summary(self) -> str:
        """One line for the audit trail and the command line."""
        what = {"study": "study", "series": "series of the study", "instance": "instance of the study"}[self.level]
        return (
            f"{what} {self.study_date or 'undated'} {self.study_description or '(no description)'!r} of "
            f"{self.patient_name or '(no name)'} (Patient ID {self.patient_id or '(none)'}): "
            f"{self.series} series, {self.instances} instances, {self.bytes} bytes"
        )


@dataclass(frozen=True)
class Identity:
    name: str
    patient_id: str
    issuer: str
    birth_date: str

    def values(self) -> dict[str, str]:
        """As DICOM keyword -> value."""
        return {keyword: getattr(self, column) for keyword, column in IDENTITY_KEYWORDS.items()}


@dataclass(frozen=True)
class EditReport:
    studies: int
    instances: int


_SELECTED = {  # the instances a deletion names
    "study": lambda uid: Study.study_uid == uid,
    "series": lambda uid: Series.series_uid == uid,
    "instance": lambda uid: Instance.sop_uid == uid,
}


def _selected(level: str, uid: str) -> peewee.ModelSelect:
    if level not in _SELECTED:
        raise CorrectionError(f"level: one of {', '.join(DELETABLE_LEVELS)}")
    return Instance.select(Instance, Series, Study).join(Series).join(Study).where(_SELECTED[level](uid))


def describe(level: str, uid: str) -> Target | None:
    """The study, series or instance ``uid`` with its patient and its size; None if unknown."""
    rows = list(_selected(level, uid).select(Instance.size, Series.id, Study.id).tuples())
    if not rows:
        return None
    study = Study.get_by_id(rows[0][2])
    patient = study.patient
    return Target(
        level, uid, study.study_uid, patient.name, patient.patient_id, patient.birth_date, study.study_date,
        study.description, len({r[1] for r in rows}), len(rows), sum(r[0] for r in rows),
    )  # fmt: skip


def identity_of(study_uid: str) -> Identity | None:
    study = Study.get_or_none(Study.study_uid == study_uid)
    if study is None:
        return None
    p = study.patient
    return Identity(p.name, p.patient_id, p.issuer, p.birth_date)


def same_id_patients(study_uid: str) -> list[dict[str, Any]]:
    """The other identities sharing this study's Patient ID (a flagged conflict): name, birth
    date, how many studies, and one study of each (to merge into)."""
    study = Study.get_or_none(Study.study_uid == study_uid)
    if study is None or not study.patient.patient_id:
        return []
    me = study.patient
    others = Patient.select().where(
        (Patient.patient_id == me.patient_id) & (Patient.issuer == me.issuer) & (Patient.id != me.id)
    )
    return [
        {"name": p.name, "birth_date": p.birth_date, "studies": p.num_studies,
         "study_uid": Study.select(Study.study_uid).where(Study.patient == p).scalar()}
        for p in others
    ]  # fmt: skip


def studies_of_patient(study_uid: str) -> list[str]:
    study = Study.get_or_none(Study.study_uid == study_uid)
    if study is None:
        return []
    return [uid for (uid,) in Study.select(Study.study_uid).where(Study.patient == study.patient_id).tuples()]


class Corrections:
    def __init__(
        self, storage: Storage, db: peewee.Database, write_lock: WriteLock, audit_log: AuditLog, min_free_bytes: int
    ) -> None:
        self.storage = storage
        self.db = db
        self.write_lock = write_lock
        self.audit = audit_log
        self.min_free_bytes = min_free_bytes
        # One correction at a time, across processes (the service, a `lightbox patient edit`):
        # a new file is journalled for removal until its edit adopts it, and another
        # correction's clean-up must not remove it meanwhile.  Not the index's write lock:
        # rewriting a large study takes a while, and receiving must go on.
        self.lock = WriteLock(storage.root.parent / "corrections.lock")

    # -- delete -------------------------------------------------------------------------

    def delete(self, level: str, uid: str, confirmation: str, user: str, address: str = "") -> Target:
        """Delete a study, series or instance.  ``confirmation`` must be the target's (its
        patient's ID, as the confirmation shows it): a stale page cannot delete another
        patient's images."""
        with self.lock:
            target = self._delete(level, uid, confirmation, user, address)
            self.finish_removals()
        LOG.info("deleted level=%s instances=%d bytes=%d user=%s", level, target.instances, target.bytes, user)
        return target

    def _delete(self, level: str, uid: str, confirmation: str, user: str, address: str) -> Target:
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            target = describe(level, uid)
            if target is None:
                raise LookupError(f"no {level} {uid}")
            if confirmation.strip() != target.confirmation:
                raise CorrectionError(f"to confirm, type {'the Patient ID' if target.patient_id else 'delete'} exactly")
            instances = list(_selected(level, uid))
            keys = [i.file_key for i in instances]
            sop_uids = [i.sop_uid for i in instances]
            for instance in instances:
                indexing.remove_instance(instance, "instance_deleted")
            # Originals kept after an identity edit go too: a deletion may be an erasure request.
            originals = Superseded.select().where(Superseded.sop_uid.in_(sop_uids))
            keys += [s.file_key for s in originals]
            Superseded.delete().where(Superseded.sop_uid.in_(sop_uids)).execute()
            FileRemoval.insert_many([{"file_key": k} for k in keys]).on_conflict_ignore().execute()
            self.audit.record(
                audit.INSTANCES_ACCESSED, user, address, action="D", study_uid=target.study_uid,
                detail=f"deleted {target.summary()}",
            )  # fmt: skip
        return target

    def finish_removals(self) -> int:
        """Unlink the files whose rows a committed deletion removed (and new files no edit
        adopted); return how many."""
        if not FileRemoval.select().exists():
            return 0
        with self.lock:
            keys = [k for (k,) in FileRemoval.select(FileRemoval.file_key).tuples()]
            live = {k for (k,) in Instance.select(Instance.file_key).where(Instance.file_key.in_(keys)).tuples()}
            self.storage.remove_many(k for k in keys if k not in live)  # never a file a row points to
            with self.write_lock, self.db.atomic("IMMEDIATE"):
                FileRemoval.delete().where(FileRemoval.file_key.in_(keys)).execute()
        return len(keys)

    # -- identity -----------------------------------------------------------------------

    def edit_identity(
        self, study_uids: Iterable[str], new: Identity, user: str, address: str = "", why: str = "edited"
    ) -> EditReport:
        """Give the studies' patient the identity ``new``: every file rewritten (same UIDs), the
        originals kept as Superseded, the index moved in one transaction, audited."""
        with self.lock:
            return self._edit_identity(list(dict.fromkeys(study_uids)), new, user, address, why)

    def _edit_identity(self, study_uids: list[str], new: Identity, user: str, address: str, why: str) -> EditReport:
        studies = [Study.get_or_none(Study.study_uid == uid) for uid in study_uids]
        if not studies or None in studies:
            raise LookupError("no such study")
        _check_identity(new)
        plans = []  # (study, instances, values to write)
        for study in studies:
            changed = {k: v for k, v in new.values().items() if v != getattr(study.patient, IDENTITY_KEYWORDS[k])}
            instances = list(Instance.select().join(Series).where(Series.study == study))
            if changed:
                plans.append((study, instances, changed))
        if not plans:
            raise CorrectionError("nothing to change: the studies already have this identity")
        needed = sum(i.size for _s, instances, _c in plans for i in instances)
        if free_bytes(self.storage.root) - needed < self.min_free_bytes:
            raise CorrectionError("not enough free disk space to write the corrected files next to the originals")
        written = self._write_new_versions(plans)
        try:
            with self.write_lock, self.db.atomic("IMMEDIATE"):
                for planned, instances, changed in plans:
                    study = Study.get_or_none(Study.id == planned.id)  # as it is now
                    now_there = {
                        i.sop_uid for i in Instance.select(Instance.sop_uid).join(Series).where(Series.study == study)
                    }
                    if study is None or now_there != {i.sop_uid for i in instances}:
                        raise CorrectionError("images of the study arrived or went while it was corrected: try again")
                    old = study.patient
                    _move_study(study, new)
                    _adopt_new_versions(instances, written)
                    self.audit.record(
                        audit.PATIENT_RECORD, user, address, action="U", study_uid=study.study_uid,
                        detail=f"identity {why}: " + "; ".join(
                            f"{k} {getattr(old, IDENTITY_KEYWORDS[k])!r} -> {v!r}" for k, v in changed.items()
                        ) + f" ({len(instances)} instances rewritten)",
                    )  # fmt: skip
        finally:
            self.finish_removals()  # new files the transaction did not adopt
        count = sum(len(instances) for _s, instances, _c in plans)
        LOG.info("identity_%s studies=%d instances=%d user=%s", why, len(plans), count, user)
        return EditReport(len(plans), count)

    def merge(self, from_study: str, into_study: str, user: str, address: str = "") -> EditReport:
        """Every study of ``from_study``'s patient takes the identity of ``into_study``'s."""
        source, target = (
            Study.get_or_none(Study.study_uid == from_study),
            Study.get_or_none(Study.study_uid == into_study),
        )
        if source is None or target is None:
            raise LookupError("no such study")
        if source.patient_id == target.patient_id:
            raise CorrectionError("both studies already belong to the same patient")
        studies = studies_of_patient(from_study)
        p = target.patient
        return self.edit_identity(
            studies, Identity(p.name, p.patient_id, p.issuer, p.birth_date), user, address, "merged"
        )

    def _write_new_versions(self, plans: list) -> dict[str, tuple[str, int, str]]:
        """Write each instance's new version; sop_uid -> (file key, size, sha256).  Each new
        file is journalled for removal before it is renamed into storage, so that one the
        index never adopts (a crash, a failure) is removed, at once or at start-up."""
        written: dict[str, tuple[str, int, str]] = {}
        try:
            for _study, instances, changed in plans:
                for instance in instances:
                    try:
                        chunks = rewritten(self.storage.path(instance.file_key), changed)
                    except (CannotRewrite, OSError, ValueError) as exc:
                        raise CorrectionError(f"instance {instance.sop_uid} cannot be rewritten: {exc}") from exc
                    temp, sha256, size = self.storage.spool_chunks(chunks)
                    key = self.storage.key_for(sha256)
                    with self.write_lock, self.db.atomic("IMMEDIATE"):
                        FileRemoval.insert(file_key=key).on_conflict_ignore().execute()
                    self.storage.adopt(temp, sha256, size)
                    written[instance.sop_uid] = (key, size, sha256)
        except BaseException:
            self.finish_removals()
            raise
        return written

    # -- originals kept after an edit ----------------------------------------------------

    def superseded(self, sop_uid: str) -> list[InstanceFile]:
        """The originals of this instance still on disk (for the backup to take)."""
        rows = Superseded.select().where(Superseded.sop_uid == sop_uid)
        return [
            InstanceFile(r.sop_uid, r.sop_class_uid, r.transfer_syntax, r.file_key, r.size, r.sha256, r.received_at)
            for r in rows
        ]

    def release_superseded(self, backed_up_through: int | None = None, older_than: float | None = None) -> int:
        """Remove the originals that the backup has (their change is at or before
        ``backed_up_through``) or, with no backup, those superseded before ``older_than``."""
        condition = (
            Superseded.change_seq <= backed_up_through
            if backed_up_through is not None
            else (Superseded.superseded_at < older_than if older_than is not None else None)
        )
        if condition is None or not Superseded.select().where(condition).exists():
            return 0  # the usual case, checked without taking the write lock
        with self.lock, self.write_lock, self.db.atomic("IMMEDIATE"):
            keys = [k for (k,) in Superseded.select(Superseded.file_key).where(condition).tuples()]
            if keys:
                FileRemoval.insert_many([{"file_key": k} for k in keys]).on_conflict_ignore().execute()
                Superseded.delete().where(Superseded.file_key.in_(keys)).execute()
        if keys:
            LOG.info("superseded_released files=%d", len(keys))
            self.finish_removals()
        return len(keys)


def _check_identity(new: Identity) -> None:
    if len(new.name) > 64 * 5 or len(new.patient_id) > 64 or len(new.issuer) > 64:
        raise CorrectionError("a value is too long (Patient ID and Issuer: 64 characters)")
    if new.birth_date and not (len(new.birth_date) == 8 and new.birth_date.isdigit()):
        raise CorrectionError("birth date: YYYYMMDD")
    if any(ch in value for value in new.values().values() for ch in "\\\r\n\t"):
        raise CorrectionError("a value holds a backslash or a control character")


def _move_study(study: Study, new: Identity) -> None:
    """Move ``study`` (and its counts) to the patient row of ``new``, made if needed; the
    patient it leaves goes when empty; conflict flags are recomputed for both Patient IDs."""
    old = study.patient
    values = {
        **{f: getattr(old, f) for f in ("sex", "species", "breed", "responsible_person", "responsible_organization", "search_terms")},
        "patient_id": new.patient_id, "issuer": new.issuer, "name": new.name,
        "name_norm": normalise_name(new.name), "birth_date": new.birth_date,
    }  # fmt: skip
    patient = indexing.patient_for(values, sop_uid="")
    for row, sign in ((old, -1), (patient, 1)):
        Patient.update(
            num_studies=Patient.num_studies + sign,
            num_series=Patient.num_series + sign * study.num_series,
            num_instances=Patient.num_instances + sign * study.num_instances,
        ).where(Patient.id == row.id).execute()
    Study.update(patient=patient, patient_mismatch=False).where(Study.id == study.id).execute()
    if Patient.get_by_id(old.id).num_studies == 0:
        Patient.delete_by_id(old.id)
    for patient_id, issuer in {(old.patient_id, old.issuer), (new.patient_id, new.issuer)}:
        indexing.flag_identity_conflicts(patient_id, issuer)


def _adopt_new_versions(instances: list[Instance], written: dict[str, tuple[str, int, str]]) -> None:
    """Each instance now points to its new file; the old one is kept as Superseded."""
    now = time.time()
    for instance in instances:
        key, size, sha256 = written[instance.sop_uid]
        Instance.update(file_key=key, size=size, sha256=sha256).where(Instance.id == instance.id).execute()
        FileRemoval.delete().where(FileRemoval.file_key == key).execute()
        study_uid, series_uid = instance.series.study.study_uid, instance.series.series_uid
        seq = indexing.record_change(SUPERSEDED_KIND, study_uid, series_uid, instance.sop_uid)
        Superseded.insert(
            sop_uid=instance.sop_uid, sop_class_uid=instance.sop_class_uid, transfer_syntax=instance.transfer_syntax,
            file_key=instance.file_key, size=instance.size, sha256=instance.sha256,
            received_at=instance.received_at, superseded_at=now, change_seq=seq,
        ).on_conflict_ignore().execute()  # fmt: skip
        indexing.record_change("instance_stored", study_uid, series_uid, instance.sop_uid)
