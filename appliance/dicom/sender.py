"""A C-STORE SCU for forwarding: stored instances to a node on one association.

Each instance goes byte for byte as stored when the node accepted its transfer syntax,
otherwise as ``outgoing.py`` prepares it for C-MOVE and C-GET (the other uncompressed little
endian syntax, or decompressed).
"""

from __future__ import annotations

import logging
import socket

from pynetdicom import AE, _config

from appliance.archive.forwarding import SendResult
from appliance.archive.nodes import DicomNode
from appliance.archive.retrieval import RetrieveItem
from appliance.archive.storage import Storage
from appliance.dicom import outgoing

LOG = logging.getLogger("lightbox.dicom")


def _succeeded(status: int) -> bool:
    return status == 0x0000 or status & 0xF000 == 0xB000  # success, or a warning (stored anyway)


def send_instances(
    node: DicomNode, items: list[RetrieveItem], storage: Storage, calling_aet: str, timeout: float = 60.0
) -> SendResult:
    # A path given to send_c_store is streamed from the file rather than read into a dataset
    # and encoded again.  The switch is global, but affects only calls with a path: these.
    _config.STORE_SEND_CHUNKED_DATASET = True
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    assoc = ae.associate(node.host, node.port, ae_title=node.aet, contexts=outgoing.requested_contexts(items))
    if not assoc.is_established:
        reason = "association rejected" if assoc.is_rejected else "no association (connection refused or timed out)"
        return SendResult(0, len(items), reason)
    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # request/response
    accepted = outgoing.accepted_syntaxes(assoc.accepted_contexts)
    sent = failed = 0
    error = ""
    try:
        for item in items:
            path = storage.path(item.file_key)
            if item.transfer_syntax in accepted.get(item.sop_class_uid, ()):
                rsp = assoc.send_c_store(path)  # the stored bytes, streamed: nothing decoded
            else:
                try:
                    dataset = outgoing.dataset_for_peer(path, item, accepted)
                except outgoing.CannotSend as exc:
                    failed += 1
                    LOG.warning("forward_instance_failed sop_instance_uid=%s reason=%r", item.sop_uid, str(exc))
                    continue
                rsp = assoc.send_c_store(dataset)
            if rsp is None or "Status" not in rsp:
                return SendResult(sent, len(items) - sent, "the association ended without a C-STORE response")
            if _succeeded(int(rsp.Status)):
                sent += 1
            else:
                failed += 1
                error = f"C-STORE status 0x{int(rsp.Status):04X}"
    finally:
        if assoc.is_established:
            assoc.release()
    return SendResult(sent, failed, error)
