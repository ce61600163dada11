"""What a DIMSE service is given and what it gives back (the table of services is ``services.py``).

A service is a plain function ``serve(context, request) -> Final``: ``context`` is the
association it runs on, seen only through ``ServiceContext`` (the archive, who is calling, the
settings, and the few things a service may do on the wire); ``request`` is the command, the
presentation context it came on and its dataset as the service's row says it is received.  It
answers with the ``Final`` response, which the association sends; an operation with pending
responses (C-FIND, C-MOVE, C-GET) sends those itself with ``respond``; one with more to do once
answered (Storage Commitment's report) gives it as the ``Final``'s ``after``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from appliance.archive import Archive, IngestResult, InstanceFile, Origin
from appliance.dicom import dimse
from appliance.dicom.options import AssociationOptions
from appliance.dicom.syntaxes import EXPLICIT_LE

D = TypeVar("D")


@dataclass(frozen=True)
class Request(Generic[D]):
    """A request, its dataset received: none (C-ECHO), an identifier parsed in memory
    (C-FIND, C-MOVE, C-GET) or a spool file (C-STORE)."""

    command: dimse.Command
    context_id: int
    abstract_syntax: str
    transfer_syntax: str
    dataset: D

    @property
    def explicit_vr(self) -> bool:
        """Whether answers' datasets go in Explicit VR Little Endian (else Implicit)."""
        return self.transfer_syntax == EXPLICIT_LE


@dataclass(frozen=True)
class Final:
    """The final response: a named status of ``status.py``, an error comment for a person,
    a retrieve's (remaining, completed, failed, warning) sub-operation counts, the
    response's dataset (already encoded) if it has one, the Affected SOP Instance UID a
    normalized service names (an N-CREATE's); ``after``, what the service still does once the
    response is sent, on the same thread (Storage Commitment's decision and report)."""

    status: int
    comment: str = ""
    counts: tuple[int, int, int, int] | None = None
    dataset: bytes | None = None
    instance: str = ""
    after: Callable[[], None] | None = None


class ServiceContext(Protocol):
    """What a service may use of the association it runs on (``association.Association``)."""

    @property
    def archive(self) -> Archive: ...

    @property
    def origin(self) -> Origin:
        """Who is calling, from where: stored with every instance received."""
        ...

    @property
    def calling_ae(self) -> str: ...

    @property
    def options(self) -> AssociationOptions: ...

    def respond(self, context_id: int, message: bytes, dataset: bytes | None = None, flush: bool = True) -> None:
        """Send a (pending) response; ``flush=False`` lets a stream of them share sends."""
        ...

    def cancelled(self) -> bool:
        """Whether the peer has sent a C-CANCEL for the request being served (never blocks)."""
        ...

    def store_here(self, item: InstanceFile, path: Path, message_id: int) -> int:
        """A C-GET sub-operation: C-STORE ``item`` to the peer on this association; its status."""
        ...

    def request_peer(self, context_id: int, message: bytes, dataset: bytes) -> int | None:
        """Send a request of ours (an N-EVENT-REPORT-RQ) to the peer on this association and
        read its response: its status; None, sending nothing, when the peer has spoken first
        (a release, which is then answered): the association is no place for it any more."""
        ...

    def note(self, result: IngestResult) -> None:
        """Count an instance received against the calling device, or record why it was refused."""
        ...
