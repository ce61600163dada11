"""HTTPS inside waitress: TLS on the HTTPS port's connections, in waitress's own event loop.

waitress speaks no TLS.  Each connection accepted on the HTTPS port becomes a ``TLSChannel``:
the TLS handshake is done a step at a time as the socket becomes readable or writable, never
waiting, so a peer that opens a connection and says nothing (or sends a handshake a byte a
minute) stalls no one else; it is closed ``HANDSHAKE_S`` seconds after it connected unless its
handshake is done, and until then it counts as idle for the connection guard (``connections``).
Then reads and writes go through the TLS layer: "would block" is "nothing now", not an error,
and what OpenSSL has decrypted and holds is read at once (``poll()`` cannot see it).

The channel is read by waitress's loop thread and written by its task threads; an OpenSSL
connection must not be used by two threads at once, so each TLS call holds the channel's lock
(never long: the socket does not block).  Closing needs no more: waitress closes a channel
holding the lock its task threads write under.
"""

from __future__ import annotations

import copy
import errno
import functools
import logging
import ssl
import threading
import time
from typing import Any

from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer

from appliance.certificates import Identity, tls_context
from appliance.web.connections import GuardedChannel

LOG = logging.getLogger("lightbox.web.tls")

HANDSHAKE_S = 10.0  # a TLS handshake takes milliseconds; one still going after this is closed
# TLS 1.2's suites as BCP 195 (RFC 9325, section 4.2) recommends, with forward secrecy and AEAD
# only; TLS 1.3's own suites are all of that kind (OpenSSL's defaults).
_QUIET = {errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED, errno.EBADF}


def server_context(identity: Identity) -> ssl.SSLContext:
    """The HTTPS server's TLS settings: BCP 195's, the server's preference first."""
    context = tls_context(ssl.PROTOCOL_TLS_SERVER, identity)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def serve(
    server: Any, sockets: list[Any], context: ssl.SSLContext, parser_class: type[HTTPRequestParser] = HTTPRequestParser
) -> None:
    """Make the listeners of ``server`` (waitress.create_server's answer) that hold one of
    ``sockets`` serve HTTPS: TLS channels reading requests with ``parser_class`` (as
    ``connections.guard``'s), and ``wsgi.url_scheme`` "https" for their requests."""
    numbers = {sock.fileno() for sock in sockets}
    dispatchers = server.map if hasattr(server, "map") else server._map
    for dispatcher in list(dispatchers.values()):
        if isinstance(dispatcher, BaseWSGIServer) and dispatcher.socket.fileno() in numbers:
            dispatcher.adj = copy.copy(dispatcher.adj)  # waitress's request parser takes the scheme from here
            dispatcher.adj.url_scheme = "https"
            channel = type("Channel", (TLSChannel,), {"parser_class": parser_class})
            dispatcher.channel_class = functools.partial(channel, context)


class TLSChannel(GuardedChannel):
    """A guarded waitress channel whose socket speaks TLS (handshake first, without blocking)."""

    will_close: bool  # waitress's: closed at the loop's next turn

    def __init__(self, context: ssl.SSLContext, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        super().__init__(server, sock, addr, adj, map)
        self._tls_lock = threading.Lock()
        self._handshaking = True
        self._wants_write = False  # TLS needs to write before it can go on (WANT_WRITE)
        self._deadline = time.monotonic() + HANDSHAKE_S
        try:
            self.socket = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:  # the peer went away already
            self._failed("accept", exc)

    # ------------------------------------------------------------------ the event loop's questions

    def readable(self) -> bool:
        if self._handshaking:
            if time.monotonic() > self._deadline and not self.will_close:
                LOG.info("tls_handshake_timeout address=%s", self._address())
                self.will_close = True
            return not self.will_close and not self._wants_write
        return bool(super().readable())

    def writable(self) -> bool:
        if self._handshaking:
            return bool(self.will_close or self._wants_write)
        return bool(super().writable() or self._wants_write)

    def handle_read(self) -> None:
        if self._handshaking:
            self._handshake()
        else:
            self._read()

    def handle_write(self) -> None:
        if self._handshaking:
            if self.will_close:
                self.handle_close()
            else:
                self._handshake()
            return
        if self._wants_write:  # a read waited for this
            self._wants_write = False
            self._read()
        if self.socket is not None:
            super().handle_write()

    # ------------------------------------------------------------------ TLS

    def _handshake(self) -> None:
        try:
            with self._tls_lock:
                self.socket.do_handshake()
        except ssl.SSLWantReadError:
            self._wants_write = False
            return
        except ssl.SSLWantWriteError:
            self._wants_write = True
            return
        except (OSError, ValueError) as exc:
            self._failed("handshake", exc)
            return
        self._handshaking = self._wants_write = False
        self.last_activity = time.time()
        self._read()  # the first request may have come with the handshake's last message

    def _read(self) -> None:
        while self.socket is not None and not self.will_close:
            try:
                with self._tls_lock:
                    data = self.socket.recv(self.adj.recv_bytes)
                    more = self.socket.pending()  # decrypted already: poll() will not tell
            except ssl.SSLWantReadError:
                return
            except ssl.SSLWantWriteError:
                self._wants_write = True
                return
            except (OSError, ValueError) as exc:
                self._failed("read", exc)
                return
            if not data:  # the peer closed (close_notify or TCP)
                self.handle_close()
                return
            self.last_activity = time.time()
            self.received(data)
            if not more:
                return

    def send(self, data: bytes, do_close: bool = True) -> int:
        if self._handshaking or self.socket is None:
            return 0
        try:
            with self._tls_lock:
                return int(self.socket.send(data))
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0  # OpenSSL keeps what it took; waitress offers the same bytes again
        except (OSError, ValueError) as exc:
            self._failed("write", exc, close=do_close)
            return 0

    def _failed(self, step: str, exc: Exception, close: bool = True) -> None:
        """One log line (no traceback) for a TLS error; the connection closes.  A peer that just
        went away (browsers close the connections they opened ahead and did not use) is no news."""
        if isinstance(exc, ssl.SSLError):
            if not isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
                LOG.info("tls_%s_failed address=%s reason=%s", step, self._address(), exc.reason or exc.strerror)
        elif getattr(exc, "errno", None) not in _QUIET:
            LOG.info("tls_%s_failed address=%s error=%s", step, self._address(), exc)
        if close:
            self.handle_close()
        else:  # a task thread: the loop thread closes it
            self.will_close = True
            self.server.pull_trigger()

    def _address(self) -> str:
        return str(self.addr[0]) if self.addr else "?"
