"""Connections waiting for their A-ASSOCIATE-RQ, read by the accepting thread alone, and
(``Pending`` holds both) those left for the peer to close after a refusal (``closing.py``).

Each costs a socket and its partial request (on the TLS port, its TLS handshake first, done
here without blocking), never a thread or an association slot.  They are
bounded in time (``associate_timeout``: from the TCP connection to the whole request) and in
number: when too many wait, the oldest connection of the address with the most waiting is
dropped, so a flood from one address evicts its own connections, not a modality's.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from appliance.dicom import pdu


class Held(Protocol):
    """A connection held by the accepting thread, since ``since``."""

    sock: socket.socket
    address: tuple[str, int]
    since: float


@dataclass(eq=False)
class Waiting:
    sock: socket.socket  # an ssl.SSLSocket on the TLS port, its handshake not yet done
    address: tuple[str, int]
    since: float
    data: bytearray = field(default_factory=bytearray)
    handshaking: bool = False

    def read(self) -> bytes | None:
        """What the socket has now; the request's body once whole, else None.  A header
        that is not an A-ASSOCIATE-RQ, or one too long, is a ProtocolError before its body is
        read; a peer that closes is an OSError, and a failed TLS handshake an ssl.SSLError."""
        if self.handshaking:
            try:
                self.sock.do_handshake()  # type: ignore[attr-defined]
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return None
            self.handshaking = False
        while len(self.data) <= 6 + pdu.MAX_ASSOCIATE_RQ:
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                break
            if not chunk:
                raise ConnectionError("closed before an A-ASSOCIATE-RQ")
            self.data += chunk
            # TLS decrypts whole records: what it holds, select() cannot see.
            if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                break
        if len(self.data) < 6:
            return None
        pdu_type, length = pdu.HEADER.unpack_from(self.data)
        if pdu_type != pdu.ASSOCIATE_RQ:
            raise pdu.ProtocolError(f"expected A-ASSOCIATE-RQ, got PDU type 0x{pdu_type:02X}")
        if length > pdu.MAX_ASSOCIATE_RQ:
            raise pdu.ProtocolError(f"A-ASSOCIATE-RQ of {length} bytes")
        if len(self.data) < 6 + length:
            return None
        if len(self.data) > 6 + length:  # the requestor must wait for our answer first
            raise pdu.ProtocolError("data after the A-ASSOCIATE-RQ before its answer")
        return bytes(self.data[6:])


class Pending:
    """The held connections, oldest first: each is let go ``timeout`` seconds after ``since``
    (set when it is added, so the order holds)."""

    def __init__(self, limit: int, timeout: float) -> None:
        self.limit = max(limit, 1)
        self.timeout = timeout
        self._held: dict[Held, None] = {}  # oldest first

    def __contains__(self, held: Held) -> bool:
        return held in self._held

    def add(self, held: Held) -> list[Held]:
        """Let ``held`` wait; the connections to drop to make room (maybe itself)."""
        self._held[held] = None
        evicted = []
        while len(self._held) > self.limit:
            busiest, _ = Counter(w.address[0] for w in self._held).most_common(1)[0]
            oldest = next(w for w in self._held if w.address[0] == busiest)
            self.remove(oldest)
            evicted.append(oldest)
        return evicted

    def remove(self, held: Held) -> None:
        self._held.pop(held, None)

    def all(self) -> list[Held]:
        return list(self._held)

    def expired(self) -> Iterator[Held]:
        """The connections whose time is up, oldest first."""
        now = time.monotonic()
        for held in list(self._held):
            if now - held.since < self.timeout:
                return
            yield held

    def next_timeout(self) -> float | None:
        """Seconds until the oldest connection's time is up (None: nothing waits)."""
        oldest = next(iter(self._held), None)
        if oldest is None:
            return None
        return max(0.0, oldest.since + self.timeout - time.monotonic())
