"""The C-MOVE and C-GET services (Patient Root and Study Root models).

The identifier names instances by unique keys; each instance becomes a C-STORE sub-operation
of ``sender.py``'s loop: on a new association to the move destination (a known node allowed
to store) for C-MOVE, on the requestor's own association for C-GET.  A Pending response with
the remaining/completed/failed/warning counts follows each sub-operation; the final response
is Success, 0xB000 (some failed or warned: the Failed SOP Instance UID List), 0xA702 (all
failed) or Cancel.  Who may retrieve at all is decided at negotiation (``policy.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from appliance.archive import LEVEL_KEYS, InstanceFile, SendResult
from appliance.dicom import auditing, dimse
from appliance.dicom.context import Final, Request, ServiceContext
from appliance.dicom.encoding import FindResponseEncoder
from appliance.dicom.requestor import AssociationFailed
from appliance.dicom.sender import GoOn, send_to_node, store_each
from appliance.dicom.status import (
    CANCEL,
    IDENTIFIER_MISMATCH,
    MOVE_DESTINATION_UNKNOWN,
    PENDING,
    SOME_SUB_OPERATIONS_FAILED,
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


def retrieve_keys(identifier: Dataset, study_root: bool) -> tuple[str, dict[str, Sequence[str]]]:
    """(level, {keyword: values}) from a C-MOVE/C-GET identifier: the unique keys of the
    retrieve level (a list allowed) and of each level above it (Patient ID only in the
    Patient Root model)."""
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    # A PATIENT-level move under the Study Root model (Orthanc sends one when a user retrieves
    # a patient) is not in PS3.4 C.6.2; it is read as a move of all that patient's studies.
    levels = STUDY_ROOT_LEVELS if study_root and level != "PATIENT" else LEVELS
    if level not in levels:
        raise BadIdentifier(f"Query/Retrieve Level {level!r} is not one of {', '.join(levels)}")
    keys: dict[str, Sequence[str]] = {}
    for above in levels[: levels.index(level) + 1]:
        keyword = LEVEL_KEYS[above]
        value = identifier.get(keyword, "")
        values = list(value) if isinstance(value, MultiValue) else str(value).split("\\")
        keys[keyword] = [v.strip() for v in values if v.strip()]
    if not keys[LEVEL_KEYS[level]]:
        raise BadIdentifier(f"{LEVEL_KEYS[level]} is required at {level} level")
    return level, keys


def _selection(context: ServiceContext, request: Request[Dataset], op: str) -> list[InstanceFile] | Final:
    """The instances to send, or the answer to a bad identifier."""
    try:
        level, keys = retrieve_keys(request.dataset, request.abstract_syntax in _STUDY_ROOT)
    except Exception as exc:  # an undecodable identifier as much as a wrong one
        LOG.warning("retrieve_refused op=%s calling_ae=%r reason=%r", op, context.calling_ae, str(exc))
        return Final(IDENTIFIER_MISMATCH, str(exc))
    items = context.archive.instances_for_retrieve(level, keys)
    LOG.info(
        "retrieve_requested op=%s calling_ae=%r level=%s keys=%d instances=%d",
        op, context.calling_ae, level, len(keys[LEVEL_KEYS[level]]), len(items),
    )  # fmt: skip
    return items


def _progress(context: ServiceContext, request: Request[Dataset]) -> GoOn:
    """Before each sub-operation: a Pending response after the one before, then the peer's
    C-CANCEL, if it sent one, stops the rest."""

    def go_on(progress: SendResult) -> bool:
        if progress.completed or progress.warning or progress.failed:
            context.respond(request.context_id, dimse.response(request.command, PENDING, counts=_counts(progress)))
        if context.cancelled():
            LOG.info("retrieve_cancelled calling_ae=%r remaining=%d", context.calling_ae, progress.remaining)
            return False
        return True

    return go_on


def _final(context: ServiceContext, request: Request[Dataset], result: SendResult) -> Final:
    """Cancel when the peer stopped it; else Success, 0xA702 when every sub-operation failed,
    0xB000 when some failed or warned (PS3.4 C.4.2.1.5).  The failed ones are listed."""
    LOG.info(
        "retrieve_done calling_ae=%r completed=%d failed=%d warning=%d remaining=%d",
        context.calling_ae, result.completed, result.failed, result.warning, result.remaining,
    )  # fmt: skip
    operation = "C-MOVE" if request.command.field == dimse.C_MOVE_RQ else "C-GET"
    auditing.sent(context.archive, context.calling_ae, context.origin.address, operation, request.dataset,
                  _counts(result))  # fmt: skip
    if result.remaining:
        status = CANCEL
    elif not result.failed and not result.warning:
        status = SUCCESS
    elif not result.completed and not result.warning:
        status = SUB_OPERATIONS_FAILED
    else:
        status = SOME_SUB_OPERATIONS_FAILED
    return Final(status, counts=_counts(result), dataset=_uid_list(result.failed_uids, request.explicit_vr))


def _counts(result: SendResult) -> tuple[int, int, int, int]:
    return result.remaining, result.completed, result.failed, result.warning


def _uid_list(failed_uids: list[str], explicit: bool) -> bytes | None:
    if not failed_uids:
        return None
    encoder = FindResponseEncoder([(_FAILED_SOP_INSTANCE_UID_LIST, "UI", "\\".join(failed_uids))], [], (), {}, explicit)
    return encoder.encode({})


def serve_move(context: ServiceContext, request: Request[Dataset]) -> Final:
    destination = request.command.text(dimse.MOVE_DESTINATION)
    node = context.archive.nodes.get(destination)
    if node is None or not node.allows("store"):
        reason = "unknown destination" if node is None else "destination not allowed to receive (store)"
        LOG.warning(
            "retrieve_refused op=move calling_ae=%r destination=%r reason=%s", context.calling_ae, destination, reason
        )
        return Final(MOVE_DESTINATION_UNKNOWN, reason)
    items = _selection(context, request, "move")
    if isinstance(items, Final):
        return items
    if not items:
        return Final(SUCCESS, counts=(0, 0, 0, 0))
    LOG.info("retrieve_destination aet=%r host=%s port=%d", node.aet, node.host, node.port)
    options = context.options
    try:
        result = send_to_node(
            node, items, context.archive.storage, options.aet, options.max_pdu, options.network_timeout, "retrieve",
            originator=(context.calling_ae, request.command.us(dimse.MESSAGE_ID)), go_on=_progress(context, request),
            identity=options.tls_identity,
        )  # fmt: skip
    except AssociationFailed as exc:
        LOG.warning("retrieve_failed op=move destination=%r reason=%r", node.aet, str(exc))
        return Final(SUB_OPERATIONS_FAILED, str(exc), counts=(len(items), 0, 0, 0))
    return _final(context, request, result)


def serve_get(context: ServiceContext, request: Request[Dataset]) -> Final:
    items = _selection(context, request, "get")
    if isinstance(items, Final):
        return items
    result = store_each(items, context.archive.storage, context.store_here, "retrieve", _progress(context, request))
    return _final(context, request, result)
