"""The table of DIMSE services Lightbox provides as SCP: negotiation and dispatch both read it.

A proposed presentation context is served by the first row whose abstract syntaxes hold its
SOP class (``negotiation.py``); each request on it must be one of that row's commands, and is
received and served as the row says (``association.py``).  Adding a service is adding a row
and its function, ``serve(context, request) -> Final`` (``context.py``).  The Modality
Worklist (``worklist.py``) is a C-FIND row answered from the archive's scheduled orders; MPPS
(``mpps.py``) a row of N-CREATE-RQ and N-SET-RQ, each with its dataset in memory; Storage
Commitment Push Model (1.2.840.10008.1.20.1) a row of N-ACTION-RQ with its dataset
(``commitment.py``), the N-EVENT-REPORT following on this association or on a new one
(``commitreport.py``).  ``dimse.py`` knows their Command Fields and responses.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from appliance.dicom import commitment, dimse, find, mpps, retrieve, store, worklist
from appliance.dicom.context import Final, Request, ServiceContext
from appliance.dicom.incoming import Incoming, identifier
from appliance.dicom.status import SUCCESS
from appliance.dicom.syntaxes import ACCEPTED_SYNTAXES, GET, IDENTIFIER_SYNTAXES, MOVE, STORAGE, VERIFICATION

D = TypeVar("D")

# (association, command, transfer syntax) -> where the request's dataset goes as it arrives
Receive = Callable[[ServiceContext, dimse.Command, str], Incoming[D]]


@dataclass(frozen=True)
class Service(Generic[D]):
    name: str  # in logs and protocol errors
    abstract_syntaxes: Container[str]  # the SOP classes it serves
    transfer_syntaxes: frozenset[str]  # accepted for them, in the peer's order of preference
    commands: frozenset[int]  # the request Command Fields it answers
    receive: Receive[D] | None  # how a request's dataset is received; None: requests carry none
    serve: Callable[[ServiceContext, Request[D]], Final]
    operation: str | None = None  # the node permission a calling AE needs (policy.py); None: any peer
    # Whether the requestor may take the SCP role for its classes: a C-GET requestor does for
    # the storage classes our C-STOREs come back on.
    peer_scp_role: bool = False


def echo(_context: ServiceContext, _request: Request[None]) -> Final:
    """C-ECHO: being here to answer is the whole service."""
    return Final(SUCCESS)


SERVICES: tuple[Service[Any], ...] = (
    Service("echo", VERIFICATION, ACCEPTED_SYNTAXES, frozenset({dimse.C_ECHO_RQ}), receive=None, serve=echo),
    Service(
        "find", find.MODELS.keys(), IDENTIFIER_SYNTAXES, frozenset({dimse.C_FIND_RQ}), receive=identifier,
        serve=find.serve, operation="find",
    ),
    Service(
        "worklist", (worklist.MODEL,), IDENTIFIER_SYNTAXES, frozenset({dimse.C_FIND_RQ}), receive=identifier,
        serve=worklist.serve, operation="find",
    ),
    Service(
        "mpps", (mpps.SOP_CLASS,), IDENTIFIER_SYNTAXES, frozenset({dimse.N_CREATE_RQ, dimse.N_SET_RQ}),
        receive=identifier, serve=mpps.serve,
    ),
    Service(
        "move", MOVE, IDENTIFIER_SYNTAXES, frozenset({dimse.C_MOVE_RQ}), receive=identifier,
        serve=retrieve.serve_move, operation="move",
    ),
    Service(
        "get", GET, IDENTIFIER_SYNTAXES, frozenset({dimse.C_GET_RQ}), receive=identifier,
        serve=retrieve.serve_get, operation="get",
    ),
    Service(
        "commit", commitment.SOP_CLASSES, IDENTIFIER_SYNTAXES, frozenset({dimse.N_ACTION_RQ}), receive=commitment.receive,
        serve=commitment.serve, operation="commit",
    ),
    # Last: storage takes every class pynetdicom does not name (private, unknown, and others),
    # so the rows above must be asked first.
    Service(
        "store", STORAGE, ACCEPTED_SYNTAXES, frozenset({dimse.C_STORE_RQ}), receive=store.spool, serve=store.serve,
        peer_scp_role=True,
    ),
)  # fmt: skip


def service_for(abstract_syntax: str) -> Service[Any] | None:
    """The first row that serves ``abstract_syntax``, if any."""
    return next((service for service in SERVICES if abstract_syntax in service.abstract_syntaxes), None)
