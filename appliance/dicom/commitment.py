"""Storage Commitment Push Model SCP (PS3.4 Annex J): the N-ACTION-RQ asking Lightbox to commit
a set of instances, and what each one's answer is.

The request is checked (class, well-known instance, action, Transaction UID, at most
``MAX_REFERENCED`` references) and answered N-ACTION-RSP success; then every instance is
decided on the same thread, and the N-EVENT-REPORT goes out (``commitreport.py``).  Ultrasound
units delete their own copies on a commitment, so an instance is committed only when it is
indexed under that SOP Class (indexed means stored and fsynced: ingest acknowledges nothing
before both), its file is read and hashed now and found equal to the index's sha256, and, with
``commitment_requires_backup``, its object (of that hash) is in the backup and was downloaded,
decrypted and found equal since (``backup_verified``).  Anything else is failed with its reason.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Collection, Iterable
from pathlib import Path

from pydicom.dataset import Dataset

from appliance.dicom import commitreport, dimse
from appliance.dicom.commitreport import SOP_CLASS, WELL_KNOWN_INSTANCE, Decision, Reference
from appliance.dicom.context import Final, Request, ServiceContext
from appliance.dicom.incoming import InMemory
from appliance.dicom.options import BackupVerified
from appliance.dicom.status import (
    INVALID_ARGUMENT,
    MISSING_ATTRIBUTE,
    NO_SUCH_ACTION,
    NO_SUCH_SOP_INSTANCE,
    RESOURCE_LIMITATION,
    SUCCESS,
)

LOG = logging.getLogger("lightbox.dicom")

SOP_CLASSES = frozenset({SOP_CLASS})  # the row's abstract syntaxes
REQUEST_COMMIT = 1  # Action Type ID "Request Storage Commitment"
MAX_REFERENCED = 10_000  # instances one request may name (a large ultrasound study is a few hundred)
MAX_REQUEST_BYTES = 4 << 20  # 10,000 references of two long UIDs each fit

# Failure Reasons of the Failed SOP Sequence (PS3.3 C.14.1.1)
PROCESSING_FAILURE = 0x0110  # not stored as asked: damaged, or not (yet) in a verified backup
NO_SUCH_OBJECT = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
DUPLICATE_TRANSACTION = 0x0131


class BadRequest(Exception):
    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status


# Transaction UIDs being answered now, by any DICOM worker of this box (each a process of its
# own): the same one again meanwhile is a duplicate (0131).  One marker file each in the spool
# folder, made with O_EXCL (atomic across processes) and removed once answered; start-up empties
# the spool, and no answer outlives the service.


def _marker(spool: Path, uid: str) -> Path:
    return spool / (hashlib.sha256(uid.encode()).hexdigest()[:32] + ".commitment")


def begin_transaction(spool: Path, uid: str) -> bool:
    try:
        os.close(os.open(_marker(spool, uid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    return True


def end_transaction(spool: Path, uid: str) -> None:
    _marker(spool, uid).unlink(missing_ok=True)


def receive(_context: ServiceContext, _command: dimse.Command, transfer_syntax: str) -> InMemory:
    """How an N-ACTION-RQ's Action Information is received (the row's ``receive``)."""
    return InMemory(transfer_syntax, MAX_REQUEST_BYTES)


def parse(command: dimse.Command, dataset: Dataset) -> tuple[str, list[Reference]]:
    """The Transaction UID and references of a request, or BadRequest with its N-ACTION status."""
    if command.text(dimse.REQUESTED_SOP_INSTANCE) != WELL_KNOWN_INSTANCE:
        raise BadRequest(NO_SUCH_SOP_INSTANCE, "not the well-known Storage Commitment instance")
    if dimse.ACTION_TYPE_ID not in command or command.us(dimse.ACTION_TYPE_ID) != REQUEST_COMMIT:
        raise BadRequest(NO_SUCH_ACTION, "Action Type ID must be 1")
    try:
        transaction = str(dataset.get("TransactionUID", "") or "")
        items = dataset.get("ReferencedSOPSequence")
    except Exception as exc:  # pydicom raises many types on malformed values
        raise BadRequest(INVALID_ARGUMENT, f"unreadable request: {exc}") from exc
    if not transaction or not items:
        raise BadRequest(MISSING_ATTRIBUTE, "Transaction UID and Referenced SOP Sequence are required")
    if len(items) > MAX_REFERENCED:
        raise BadRequest(RESOURCE_LIMITATION, f"more than {MAX_REFERENCED} instances in one request")
    references = []
    for item in items:
        sop_class = str(item.get("ReferencedSOPClassUID", "") or "")
        sop_instance = str(item.get("ReferencedSOPInstanceUID", "") or "")
        if not sop_class or not sop_instance:
            raise BadRequest(MISSING_ATTRIBUTE, "a reference without its SOP Class or Instance UID")
        references.append(Reference(sop_class, sop_instance))
    return transaction, references


def decide(
    context: ServiceContext, transaction: str, references: Iterable[Reference], backup_verified: BackupVerified | None
) -> Decision:
    """Each reference committed or failed, reading and hashing every stored file now."""
    archive, decision = context.archive, Decision(transaction)
    intact: list[tuple[Reference, str]] = []  # (reference, sha256): stored, of its class, hash verified
    for ref in references:
        stored = archive.stored_instance(ref.sop_instance)
        if stored is None:
            decision.failed.append((ref, NO_SUCH_OBJECT))
        elif stored.sop_class_uid != ref.sop_class:
            decision.failed.append((ref, CLASS_INSTANCE_CONFLICT))
        elif not _hash_verifies(context, stored.file_key, stored.sha256, ref.sop_instance):
            decision.failed.append((ref, PROCESSING_FAILURE))
        else:
            intact.append((ref, stored.sha256))
    in_backup = None if backup_verified is None else _backed_up(backup_verified, intact)
    for ref, _sha in intact:
        if in_backup is None or ref.sop_instance in in_backup:
            decision.committed.append(ref)
        else:
            decision.failed.append((ref, PROCESSING_FAILURE))
    return decision


def _hash_verifies(context: ServiceContext, file_key: str, sha256: str, sop_uid: str) -> bool:
    try:
        actual = context.archive.storage.hash(file_key)
    except OSError as exc:
        LOG.warning("commitment_file_unreadable sop_instance_uid=%s reason=%r", sop_uid, str(exc))
        return False
    if actual != sha256:
        LOG.warning("commitment_hash_mismatch sop_instance_uid=%s", sop_uid)
        return False
    return True


def _backed_up(backup_verified: BackupVerified, intact: list[tuple[Reference, str]]) -> set[str]:
    try:
        return backup_verified([(ref.sop_instance, sha) for ref, sha in intact])
    except Exception as exc:  # the backup's state unreadable: nothing is known to be backed up
        LOG.warning("commitment_backup_state_unreadable reason=%r", str(exc))
        return set()


def serve(context: ServiceContext, request: Request[Dataset]) -> Final:
    """N-ACTION-RQ: answered at once; the decision and its N-EVENT-REPORT follow the response."""
    try:
        transaction, references = parse(request.command, request.dataset)
    except BadRequest as exc:
        LOG.warning(
            "commitment_refused calling_ae=%r status=0x%04X reason=%r", context.calling_ae, exc.status, str(exc)
        )
        return Final(exc.status, str(exc))
    options = context.options
    # Only these of the request outlive it (a report may wait minutes for its delivery): the parsed
    # dataset of a large request is tens of MB.
    context_id, explicit = request.context_id, request.explicit_vr
    backup_verified = None
    if options.commitment_requires_backup:
        backup_verified = options.backup_verified or _nothing_backed_up

    spool = context.archive.storage.spool

    def then() -> None:
        if not begin_transaction(spool, transaction):
            decision = Decision(transaction, failed=[(ref, DUPLICATE_TRANSACTION) for ref in references])
            commitreport.report(context, context_id, explicit, decision, finished=lambda: None)
            return
        try:
            decision = decide(context, transaction, references, backup_verified)
        except BaseException:
            end_transaction(spool, transaction)
            raise
        LOG.info(
            "commitment_decided calling_ae=%r transaction_uid=%s committed=%d failed=%d requires_backup=%s",
            context.calling_ae, transaction, len(decision.committed), len(decision.failed),
            options.commitment_requires_backup,
        )  # fmt: skip
        commitreport.report(
            context, context_id, explicit, decision, finished=lambda: end_transaction(spool, transaction)
        )

    return Final(SUCCESS, after=then)


def _nothing_backed_up(_pairs: Collection[tuple[str, str]]) -> set[str]:
    return set()
