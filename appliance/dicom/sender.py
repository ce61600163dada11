"""Stored instances to a peer, one C-STORE sub-operation each: the one loop behind C-MOVE (to a
node, on a new association), C-GET (back on the requestor's own association) and forwarding.

Every sub-operation is counted the same way (``archive.SendResult``): Success is completed; a
Warning status is a warning, the instance stored all the same; anything else, or an instance
that cannot go to this peer (``outgoing.CannotSend``), is failed; when the association breaks,
the rest fail with it.  Each instance goes byte for byte as stored when the peer accepted its
transfer syntax, otherwise re-encoded or decompressed as ``outgoing.py`` decides.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

from appliance.archive import DicomNode, InstanceFile, SendResult, Storage
from appliance.certificates import Identity
from appliance.dicom import outgoing
from appliance.dicom.requestor import AssociationFailed, StoreRequestor
from appliance.dicom.status import SUCCESS, is_warning
from appliance.dicom.tls import node_context

LOG = logging.getLogger("lightbox.dicom")

Store = Callable[[InstanceFile, Path, int], int]  # (instance, its stored file, message id) -> the peer's status
GoOn = Callable[[SendResult], bool]  # before each sub-operation, the counts so far: whether to go on


def _always(_progress: SendResult) -> bool:
    return True


def store_each(
    items: Sequence[InstanceFile], storage: Storage, store: Store, purpose: str, go_on: GoOn = _always
) -> SendResult:
    """C-STORE each of ``items`` with ``store``, asking ``go_on`` before each (a retrieve sends
    its pending response and checks for a cancel there); ``purpose`` ("retrieve", "forward")
    names the log lines."""
    result = SendResult()
    for number, item in enumerate(items):
        result.remaining = len(items) - number
        if not go_on(result):
            break
        result.remaining -= 1  # this one is under way
        try:
            status = store(item, storage.path(item.file_key), number + 1)
        except outgoing.CannotSend as exc:
            LOG.warning("%s_instance_failed sop_instance_uid=%s reason=%r", purpose, item.sop_uid, str(exc))
            _failed(result, item, str(exc))
            continue
        except AssociationFailed as exc:  # the peer went away: the rest fail with it
            LOG.warning("%s_failed reason=%r remaining=%d", purpose, str(exc), len(items) - number)
            for rest in items[number:]:
                _failed(result, rest, str(exc))
            result.remaining = 0
            break
        if status == SUCCESS:
            result.completed += 1
        elif is_warning(status):
            result.warning += 1
        else:
            LOG.warning("%s_instance_failed sop_instance_uid=%s status=0x%04X", purpose, item.sop_uid, status)
            _failed(result, item, f"C-STORE status 0x{status:04X}")
    return result


def _failed(result: SendResult, item: InstanceFile, reason: str) -> None:
    result.failed += 1
    result.failed_uids.append(item.sop_uid)
    result.error = reason


def send_to_node(
    node: DicomNode,
    items: Sequence[InstanceFile],
    storage: Storage,
    calling_aet: str,
    max_pdu: int,
    timeout: float,
    purpose: str,
    originator: tuple[str, int] | None = None,
    go_on: GoOn = _always,
    identity: Identity | None = None,
) -> SendResult:
    """``store_each`` on a new association to ``node`` (C-MOVE's, with the ``originator``'s AE
    title and message id in each request, and forwarding's), over DICOM TLS with the box's
    ``identity`` when the node requires it.  Raises AssociationFailed when the association
    cannot be opened."""
    requestor = StoreRequestor.open(
        node.host, node.port, calling_aet, node.aet, outgoing.requested_contexts(items), max_pdu, timeout,
        tls_for(node, identity),
    )  # fmt: skip

    def store(item: InstanceFile, path: Path, _number: int) -> int:
        return requestor.store(item, path, originator)

    try:
        return store_each(items, storage, store, purpose, go_on)
    finally:
        requestor.release()


def tls_for(node: DicomNode, identity: Identity | None) -> ssl.SSLContext | None:
    """The TLS context for an association to ``node``; None when it takes plain DICOM."""
    if not node.tls:
        return None
    if identity is None:
        raise AssociationFailed(f"{node.aet} requires TLS, and this command has no TLS certificate")
    try:
        return node_context(identity, node)
    except ssl.SSLError as exc:
        raise AssociationFailed(f"TLS with {node.aet}: {exc.reason or exc}") from exc


def forward(
    node: DicomNode,
    items: list[InstanceFile],
    storage: Storage,
    calling_aet: str,
    max_pdu: int,
    timeout: float = 60.0,
    identity: Identity | None = None,
) -> SendResult:
    """Forwarding's sender (``archive.forwarding.run_due``): a node that cannot be reached has
    failed every instance, to be retried later."""
    try:
        return send_to_node(node, items, storage, calling_aet, max_pdu, timeout, "forward", identity=identity)
    except AssociationFailed as exc:
        return SendResult(failed=len(items), failed_uids=[item.sop_uid for item in items], error=str(exc))
