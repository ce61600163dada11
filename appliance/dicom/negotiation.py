"""Presentation contexts answered from the table of services (``services.py``).

Each proposed context is accepted when a service serves its abstract syntax, in the first of
the peer's transfer syntaxes that the service accepts (the peer's order is kept: an
ultrasound unit that prefers JPEG gets its images stored as JPEG), and unless the calling AE
may not use that service (``policy.py``: the refused operations).  A C-GET requestor proposes
the SCP role for the storage classes it wants back: accepting it lets us send those on this
association.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.dicom import outgoing, pdu
from appliance.dicom.services import Service, service_for


@dataclass(frozen=True)
class Bound:
    """An accepted presentation context: its abstract and transfer syntax, and its service."""

    abstract_syntax: str
    transfer_syntax: str
    service: Service[Any]


@dataclass
class Negotiated:
    results: list[pdu.ContextResult] = field(default_factory=list)
    accepted: dict[int, Bound] = field(default_factory=dict)  # context id -> what it was accepted for
    roles: dict[str, tuple[bool, bool]] = field(default_factory=dict)  # role selections answered
    sendable: outgoing.Accepted = field(default_factory=dict)  # where we may send C-STOREs (C-GET)


def operations_asked(request: pdu.AssociateRequest) -> set[str]:
    """The node permissions (find, move, get) the proposed contexts' services need."""
    return {
        service.operation
        for cx in request.contexts
        if (service := service_for(cx.abstract_syntax)) is not None and service.operation is not None
    }


def negotiate(request: pdu.AssociateRequest, refused_operations: frozenset[str]) -> Negotiated:
    done = Negotiated()
    for cx in request.contexts:
        first = cx.transfer_syntaxes[0] if cx.transfer_syntaxes else ""
        service = service_for(cx.abstract_syntax)
        if service is None or service.operation in refused_operations:
            done.results.append(pdu.ContextResult(cx.context_id, pdu.ABSTRACT_SYNTAX_NOT_SUPPORTED, first))
            continue
        chosen = next((ts for ts in cx.transfer_syntaxes if ts in service.transfer_syntaxes), None)
        if chosen is None:
            done.results.append(pdu.ContextResult(cx.context_id, pdu.TRANSFER_SYNTAXES_NOT_SUPPORTED, first))
            continue
        done.results.append(pdu.ContextResult(cx.context_id, pdu.ACCEPTED, chosen))
        done.accepted[cx.context_id] = Bound(cx.abstract_syntax, chosen, service)
        if cx.abstract_syntax in request.roles:
            scu, scp = request.roles[cx.abstract_syntax]
            scp = scp and service.peer_scp_role
            done.roles[cx.abstract_syntax] = (scu, scp)
            if scp:
                done.sendable.setdefault(cx.abstract_syntax, {}).setdefault(chosen, cx.context_id)
    return done
