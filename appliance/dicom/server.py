"""The DICOM server: one table binding pynetdicom events to thin handlers over the archive."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydicom.dataset import Dataset
from pynetdicom import AE, build_context, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from appliance.archive import Archive, Origin, Outcome
from appliance.dicom import contexts, spool

LOG = logging.getLogger("lightbox.dicom")

# C-STORE statuses (PS3.4 Table B.2-1; 0x0110 is the general processing failure of PS3.7 C).
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110

STATUS_FOR_OUTCOME = {
    Outcome.STORED: SUCCESS,
    Outcome.ALREADY_PRESENT: SUCCESS,
    Outcome.DUPLICATE_KEPT_FIRST: SUCCESS,
    Outcome.REPLACED: SUCCESS,
    Outcome.REFUSED_UNREADABLE: CANNOT_UNDERSTAND,
    Outcome.REFUSED_INVALID: CANNOT_UNDERSTAND,
    Outcome.REFUSED_MISMATCH: DATASET_MISMATCH,
    Outcome.OUT_OF_RESOURCES: OUT_OF_RESOURCES,
    Outcome.FAILED: PROCESSING_FAILURE,
}


@dataclass(frozen=True)
class DicomOptions:
    aet: str = "LIGHTBOX"
    host: str = "0.0.0.0"
    port: int = 11112
    max_associations: int = 16
    network_timeout: float = 60.0
    max_pdu: int = 1 << 20
    max_instance_bytes: int = 4096 << 20


def _status(code: int, comment: str = "") -> Dataset:
    rsp = Dataset()
    rsp.Status = code
    if comment and code != SUCCESS:
        rsp.ErrorComment = comment[:64]
    return rsp


def origin_of(assoc: Any) -> Origin:
    requestor = assoc.requestor
    request = requestor.primitive  # the A-ASSOCIATE-RQ, as the peer sent it
    return Origin(
        via="dicom",
        calling_ae=(request.calling_ae_title or "").strip(),
        called_ae=(request.called_ae_title or "").strip(),
        address=requestor.address,
        port=requestor.port,
    )


def handle_connection_open(event: evt.Event, options: DicomOptions) -> None:
    """Accepted sockets do not inherit the listener's timeout: without one, a peer that
    stalls in the middle of a PDU holds its thread forever.  Nagle off: DIMSE is request/
    response and delayed ACKs cost 40 ms per round trip."""
    sock = event.assoc.dul.socket.socket
    sock.settimeout(options.network_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def handle_association_requested(event: evt.Event) -> None:
    assoc = event.assoc
    proposed = assoc.requestor.primitive.presentation_context_definition_list
    assoc.acceptor.supported_contexts = contexts.acceptable_contexts(proposed, contexts.SERVICES)
    origin = origin_of(assoc)
    LOG.info(
        "association_requested calling_ae=%r called_ae=%r address=%s:%d implementation=%s contexts=%d",
        origin.calling_ae,
        origin.called_ae,
        origin.address,
        origin.port,
        assoc.requestor.implementation_class_uid,
        len(proposed),
    )


def handle_echo(event: evt.Event) -> int:
    return SUCCESS


def handle_store(event: evt.Event, archive: Archive) -> Dataset:
    path = Path(event.dataset_path)
    spooled = spool.spool_for(path)
    origin = origin_of(event.assoc)
    if spooled is not None and spooled.error is not None:
        LOG.warning(
            "ingest outcome=out_of_resources via=dicom calling_ae=%r address=%s reason=%r",
            origin.calling_ae,
            origin.address,
            spooled.error,
        )
        return _status(OUT_OF_RESOURCES, f"refused: {spooled.error}")
    result = archive.ingest(path, origin)
    return _status(STATUS_FOR_OUTCOME[result.outcome], result.reason)


def handlers(archive: Archive, options: DicomOptions) -> list[tuple[Any, Callable[..., Any], list[Any]] | tuple[Any, Callable[..., Any]]]:
    return [
        (evt.EVT_CONN_OPEN, handle_connection_open, [options]),
        (evt.EVT_REQUESTED, handle_association_requested),
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, handle_store, [archive]),
    ]


def start(archive: Archive, options: DicomOptions) -> ThreadedAssociationServer:
    """Start listening; returns the server (call ``shutdown()`` to stop)."""
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    spool.install(archive.storage.spool, options.max_instance_bytes)
    contexts.install_storage_routing()
    ae = AE(ae_title=options.aet)
    ae.maximum_pdu_size = options.max_pdu
    ae.maximum_associations = options.max_associations
    ae.network_timeout = options.network_timeout
    ae.dimse_timeout = options.network_timeout
    ae.acse_timeout = min(30.0, options.network_timeout)
    ae.require_called_aet = False  # lenient: modalities often call us by another name
    # Only a placeholder: each association gets contexts built from what it proposes.
    ae.supported_contexts = [build_context(Verification)]
    server = ae.start_server(
        (options.host, options.port), block=False, evt_handlers=handlers(archive, options)
    )
    LOG.info("dicom_listening aet=%s host=%s port=%d", options.aet, options.host, options.port)
    return server
