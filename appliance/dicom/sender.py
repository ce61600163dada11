"""A C-STORE SCU for forwarding: stored instances to a node on one association.

The same requestor as C-MOVE sub-operations (``requestor.py``): each instance goes byte for
byte as stored when the node accepted its transfer syntax, otherwise re-encoded or
decompressed as ``outgoing.py`` decides.
"""

from __future__ import annotations

import logging

from appliance.archive import SendResult
from appliance.archive import DicomNode
from appliance.archive import InstanceFile
from appliance.archive import Storage
from appliance.dicom import outgoing
from appliance.dicom.requestor import AssociationFailed, StoreRequestor
from appliance.dicom.status import STORE_WARNINGS, SUCCESS

LOG = logging.getLogger("lightbox.dicom")


def send_instances(
    node: DicomNode,
    items: list[InstanceFile],
    storage: Storage,
    calling_aet: str,
    max_pdu: int,
    timeout: float = 60.0,
) -> SendResult:
    try:
        requestor = StoreRequestor.open(
            node.host, node.port, calling_aet, node.aet, outgoing.requested_contexts(items), max_pdu, timeout
        )
    except AssociationFailed as exc:
        return SendResult(0, len(items), str(exc))
    sent = failed = 0
    error = ""
    try:
        for number, item in enumerate(items):
            try:
                status = requestor.store(item, storage.path(item.file_key), None)
            except outgoing.CannotSend as exc:
                failed += 1
                LOG.warning("forward_instance_failed sop_instance_uid=%s reason=%r", item.sop_uid, str(exc))
                continue
            except AssociationFailed as exc:  # the rest fail with it
                return SendResult(sent, len(items) - number + failed, str(exc))
            if status == SUCCESS or status in STORE_WARNINGS:
                sent += 1
            else:
                failed += 1
                error = f"C-STORE status 0x{status:04X}"
    finally:
        requestor.release()
    return SendResult(sent, failed, error)
