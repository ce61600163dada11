"""Connections Lightbox has refused or aborted, left for the peer to close (PS3.8 9.2, Sta13).

After sending an A-ASSOCIATE-RJ or an A-ABORT, the acceptor waits for the requestor to close
the connection, bounded by the ARTIM timer.  Closing at once, with the peer's bytes unread or
still coming, makes Linux send a reset that can overtake what was just sent: pynetdicom saw
about one refusal in ten as an abort.  Each such connection is held by the accepting thread
like a waiting one (``pending.py``: no thread, no association slot, ``associate_timeout`` --
the same ARTIM timer -- and ``max_pending`` bound it); what the peer still sends is read and
dropped, up to ``DISCARD_LIMIT``.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

DISCARD_LIMIT = 64 << 10  # bytes read from a refused peer before it is cut off


@dataclass(eq=False)
class Closing:
    sock: socket.socket  # not blocking
    address: tuple[str, int]
    since: float
    discarded: int = 0

    def drain(self) -> bool:
        """Read and drop what the peer sent; True once it has closed, failed, or sent too much."""
        while self.discarded < DISCARD_LIMIT:
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            except OSError:
                return True
            if not chunk:
                return True
            self.discarded += len(chunk)
        return True
