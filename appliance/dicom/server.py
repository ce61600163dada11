"""The pynetdicom side of the DICOM front door: one table binding events to thin handlers.

It serves the associations the lean storage loop does not (anything that proposes more than
verification and storage); the acceptor in ``acceptor.py`` owns the port and hands them over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, build_context, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from appliance.archive import Archive, Origin
from appliance.dicom import contexts, find, policy, retrieve, spool
from appliance.dicom.status import STATUS_FOR_OUTCOME, SUCCESS

LOG = logging.getLogger("lightbox.dicom")

@dataclass(frozen=True)
class DicomOptions:
    aet: str = "LIGHTBOX"
    host: str = "0.0.0.0"
    port: int = 11112
    max_associations: int = 16
    network_timeout: float = 60.0
    max_pdu: int = 1 << 20
    max_instance_bytes: int = 4096 << 20
    query_retrieve_from: str = "known-nodes"  # see policy.py


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


def handle_association_requested(event: evt.Event, archive: Archive, options: DicomOptions) -> None:
    assoc = event.assoc
    proposed = assoc.requestor.primitive.presentation_context_definition_list
    origin = origin_of(assoc)
    services = policy.allowed_services(
        contexts.SERVICES,
        (str(cx.abstract_syntax) for cx in proposed),
        origin.calling_ae,
        archive.nodes,
        options.query_retrieve_from,
    )
    assoc.acceptor.supported_contexts = contexts.acceptable_contexts(proposed, services)
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
        return _status(*spool.refusal(origin, spooled.error))
    result = archive.ingest(path, origin)
    return _status(STATUS_FOR_OUTCOME[result.outcome], result.reason)


def handlers(archive: Archive, options: DicomOptions) -> list[tuple[Any, ...]]:
    return [
        (evt.EVT_REQUESTED, handle_association_requested, [archive, options]),
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, handle_store, [archive]),
        (evt.EVT_C_FIND, find.handle_find, [archive]),
        (evt.EVT_C_MOVE, retrieve.handle_move, [archive]),
        (evt.EVT_C_GET, retrieve.handle_get, [archive]),
    ]


def make_server(archive: Archive, options: DicomOptions) -> ThreadedAssociationServer:
    """A pynetdicom server that listens nowhere: the acceptor hands it accepted sockets
    (``server.finish_request(sock, address)``), their A-ASSOCIATE-RQ still unread."""
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
    server = ae.make_server(
        ("127.0.0.1", 0),
        contexts=ae.supported_contexts,
        evt_handlers=handlers(archive, options),
        server_class=ThreadedAssociationServer,
    )
    server.server_close()  # never listens itself
    return server
