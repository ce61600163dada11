"""C-MOVE and C-GET (Patient Root and Study Root), answered on our own association loop.

The identifier names instances by unique keys; each instance becomes a C-STORE sub-operation:
on a new association to the move destination (a known node) for C-MOVE, on the requestor's
own association for C-GET.  A Pending response with the remaining/completed/failed/warning
counts follows each sub-operation; the final response is Success, 0xB000 (some failed or
warned: the Failed SOP Instance UID List) or 0xA702 (all failed).  Who may retrieve at all is
decided at negotiation (``policy.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from appliance.archive import LEVEL_KEYS, InstanceFile
from appliance.dicom import dimse, outgoing
from appliance.dicom.encoding import FindResponseEncoder
from appliance.dicom.requestor import AssociationFailed, StoreRequestor
from appliance.dicom.status import (
    CANCEL,
    IDENTIFIER_MISMATCH,
    MOVE_DESTINATION_UNKNOWN,
    PENDING,
    SOME_SUB_OPERATIONS_FAILED,
    STORE_WARNINGS,
    SUB_OPERATIONS_FAILED,
    SUCCESS,
)

LOG = logging.getLogger("lightbox.dicom")

LEVELS = tuple(LEVEL_KEYS)  # top down
STUDY_ROOT_LEVELS = LEVELS[1:]
_FAILED_SOP_INSTANCE_UID_LIST = 0x00080058
_STUDY_ROOT = {"1.2.840.10008.5.1.4.1.2.2.2", "1.2.840.10008.5.1.4.1.2.2.3"}  # Study Root MOVE, GET


class BadIdentifier(ValueError):
    """The identifier does not name instances the way PS3.4 C.4.2.1.4.1 says."""


def retrieve_keys(identifier: Dataset, study_root: bool) -> tuple[str, dict[str, list[str]]]:
    """(level, {keyword: values}) from a C-MOVE/C-GET identifier: the unique keys of the
    retrieve level (a list allowed) and of each level above it (Patient ID only in the
    Patient Root model)."""
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    # A PATIENT-level move under the Study Root model (Orthanc sends one when a user retrieves
    # a patient) is not in PS3.4 C.6.2; it is read as a move of all that patient's studies.
    levels = STUDY_ROOT_LEVELS if study_root and level != "PATIENT" else LEVELS
    if level not in levels:
        raise BadIdentifier(f"Query/Retrieve Level {level!r} is not one of {', '.join(levels)}")
    keys = {}
    for above in levels[: levels.index(level) + 1]:
        keyword = LEVEL_KEYS[above]
        value = identifier.get(keyword, "")
        values = list(value) if isinstance(value, MultiValue) else str(value).split("\\")
        keys[keyword] = [v.strip() for v in values if v.strip()]
    if not keys[LEVEL_KEYS[level]]:
        raise BadIdentifier(f"{LEVEL_KEYS[level]} is required at {level} level")
    return level, keys


def _selection(assoc: Any, context_id: int, command: dimse.Command, identifier: Dataset, abstract: str, op: str) -> list[InstanceFile] | None:
    """The instances to send, or None after answering a bad identifier."""
    try:
        level, keys = retrieve_keys(identifier, abstract in _STUDY_ROOT)
    except Exception as exc:  # an undecodable identifier as much as a wrong one
        LOG.warning("retrieve_refused op=%s calling_ae=%r reason=%r", op, assoc.calling_ae, str(exc))
        assoc.respond(context_id, dimse.operation_response(command, IDENTIFIER_MISMATCH, comment=str(exc)))
        return None
    items = assoc.archive.instances_for_retrieve(level, keys)
    LOG.info(
        "retrieve_requested op=%s calling_ae=%r level=%s keys=%d instances=%d",
        op, assoc.calling_ae, level, len(keys[LEVEL_KEYS[level]]), len(items),
    )  # fmt: skip
    return items


Send = Callable[[InstanceFile, Path, int], int]  # (item, stored file, message id) -> C-STORE status


def _sub_operations(assoc: Any, context_id: int, command: dimse.Command, items: list[InstanceFile], send: Send) -> None:
    """One C-STORE per instance, a Pending response after each, then the final response."""
    completed = failed = warning = 0
    failed_uids: list[str] = []
    for number, item in enumerate(items):
        if assoc.cancelled():
            LOG.info("retrieve_cancelled calling_ae=%r remaining=%d", assoc.calling_ae, len(items) - number)
            counts = (len(items) - number, completed, failed, warning)
            assoc.respond(context_id, dimse.operation_response(command, CANCEL, bool(failed_uids), counts), _uid_list(assoc, context_id, failed_uids))
            return
        try:
            status = send(item, assoc.archive.storage.path(item.file_key), number + 1)
        except outgoing.CannotSend as exc:
            LOG.warning("retrieve_instance_failed sop_instance_uid=%s reason=%r", item.sop_uid, str(exc))
            status = None
        except AssociationFailed as exc:  # the destination went away: the rest fail with it
            LOG.warning("retrieve_failed calling_ae=%r reason=%r", assoc.calling_ae, str(exc))
            failed += len(items) - number
            failed_uids += [i.sop_uid for i in items[number:]]
            break
        if status == SUCCESS:
            completed += 1
        elif status in STORE_WARNINGS:
            warning += 1
        else:
            if status is not None:
                LOG.warning("retrieve_instance_failed sop_instance_uid=%s status=0x%04X", item.sop_uid, status)
            failed += 1
            failed_uids.append(item.sop_uid)
        if number + 1 < len(items):
            counts = (len(items) - number - 1, completed, failed, warning)
            assoc.respond(context_id, dimse.operation_response(command, PENDING, counts=counts))
    if not failed and not warning:
        final = SUCCESS
    elif not completed and not warning:
        final = SUB_OPERATIONS_FAILED
    else:
        final = SOME_SUB_OPERATIONS_FAILED
    LOG.info("retrieve_done instances=%d completed=%d failed=%d warning=%d", len(items), completed, failed, warning)
    counts = (0, completed, failed, warning)
    assoc.respond(context_id, dimse.operation_response(command, final, bool(failed_uids), counts), _uid_list(assoc, context_id, failed_uids))


def _uid_list(assoc: Any, context_id: int, failed_uids: list[str]) -> bytes | None:
    if not failed_uids:
        return None
    encoder = FindResponseEncoder([(_FAILED_SOP_INSTANCE_UID_LIST, "UI", "\\".join(failed_uids))], [], (), {}, assoc.is_explicit(context_id))
    return encoder.encode({})


def serve_move(assoc: Any, context_id: int, command: dimse.Command, identifier: Dataset, abstract: str) -> None:
    destination = command.text(dimse.MOVE_DESTINATION)
    node = assoc.archive.nodes.get(destination)
    if node is None or not node.allows("store"):
        reason = "unknown destination" if node is None else "destination not allowed to receive (store)"
        LOG.warning("retrieve_refused op=move calling_ae=%r destination=%r reason=%s", assoc.calling_ae, destination, reason)
        assoc.respond(context_id, dimse.operation_response(command, MOVE_DESTINATION_UNKNOWN, comment=reason))
        return
    items = _selection(assoc, context_id, command, identifier, abstract, "move")
    if items is None:
        return
    if not items:
        assoc.respond(context_id, dimse.operation_response(command, SUCCESS, counts=(0, 0, 0, 0)))
        return
    LOG.info("retrieve_destination aet=%r host=%s port=%d", node.aet, node.host, node.port)
    try:
        requestor = StoreRequestor.open(
            node.host, node.port, assoc.options.aet, node.aet, outgoing.requested_contexts(items),
            assoc.options.max_pdu, assoc.options.network_timeout,
        )  # fmt: skip
    except AssociationFailed as exc:
        LOG.warning("retrieve_failed op=move destination=%r reason=%r", node.aet, str(exc))
        counts = (len(items), 0, 0, 0)
        assoc.respond(context_id, dimse.operation_response(command, SUB_OPERATIONS_FAILED, counts=counts, comment=str(exc)))
        return
    originator = (assoc.calling_ae, command.us(dimse.MESSAGE_ID))
    try:
        _sub_operations(
            assoc, context_id, command, items,
            lambda item, path, _number: requestor.store(item, path, originator),
        )  # fmt: skip
    finally:
        requestor.release()


def serve_get(assoc: Any, context_id: int, command: dimse.Command, identifier: Dataset, abstract: str) -> None:
    items = _selection(assoc, context_id, command, identifier, abstract, "get")
    if items is not None:
        _sub_operations(assoc, context_id, command, items, assoc.store_here)
