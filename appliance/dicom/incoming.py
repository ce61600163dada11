"""A request's dataset as it comes off the wire: what the association writes each PDV fragment
into (``Incoming``), and the in-memory kind for identifiers (C-FIND, C-MOVE, C-GET).  A
C-STORE's dataset goes to a spool file instead (``archive.BoundedSpool``, opened by ``store.spool``).
"""

from __future__ import annotations

from io import BytesIO
from typing import Protocol, TypeVar

from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset

from appliance.dicom import dimse, pdu
from appliance.dicom.context import ServiceContext
from appliance.dicom.syntaxes import IMPLICIT_LE

D_co = TypeVar("D_co", covariant=True)

MAX_IDENTIFIER = 1 << 20  # a query identifier is a few hundred bytes; refuse absurd ones


class Unreadable(Exception):
    """The whole dataset arrived but cannot be read; answered 0xC000 without calling the service."""


class Incoming(Protocol[D_co]):
    def write(self, data: memoryview) -> object:
        """The next fragment (a view the caller reuses: keep a copy, not the view)."""
        ...

    def finish(self) -> D_co:
        """The dataset the service gets, once the last fragment is in (or Unreadable)."""
        ...

    def discard(self) -> None:
        """The request ends before its service runs (the peer went away, or Unreadable)."""
        ...


class InMemory:
    """An identifier, read whole (at most ``limit`` bytes) and parsed in one go."""

    def __init__(self, transfer_syntax: str, limit: int = MAX_IDENTIFIER) -> None:
        self.implicit = transfer_syntax == IMPLICIT_LE
        self.limit = limit
        self.data = bytearray()

    def write(self, data: memoryview) -> None:
        if len(self.data) + len(data) > self.limit:
            raise pdu.ProtocolError("request dataset too large")
        self.data += data

    def finish(self) -> Dataset:
        try:
            identifier = read_dataset(BytesIO(bytes(self.data)), self.implicit, True)
            len(identifier)  # parse it now: a broken one must fail here
        except Exception as exc:  # pydicom raises many types on malformed input
            raise Unreadable(f"unreadable identifier: {exc}") from exc
        return identifier

    def discard(self) -> None:
        self.data.clear()


def identifier(_context: ServiceContext, _command: dimse.Command, transfer_syntax: str) -> InMemory:
    """How a Query/Retrieve request's identifier is received (a row's ``receive``)."""
    return InMemory(transfer_syntax)
