"""The DICOM ports: accept, protect, and route each connection.

One thread accepts on every DICOM listening socket (104 and 11112 under systemd), woken by a
pipe to stop: the sockets may be systemd's, shared with sibling workers and with the next
start of the service, so they are closed here but never shut down.

The same thread reads each new connection's A-ASSOCIATE-RQ (``pending.py``) without a thread
of its own and without a slot: a silent or slow connection costs a socket and a few bytes, is
dropped after ``associate_timeout``, and the oldest of the busiest address goes first when too
many wait.  Only a whole request takes an association slot (``slots.py``: the cap and one
address's share of it, counted across worker processes) and a thread, which admits it under
the device policy and serves it with Lightbox's own loop (``association.py``).  Threads are
thus bounded by the cap, and one address cannot shut every modality out.

A connection answered with an A-ASSOCIATE-RJ or an A-ABORT goes back to the same thread, held
like a waiting one until the peer closes it (``closing.py``, PS3.8 Sta13).
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Sequence

from appliance.archive import Archive
from appliance.dicom import admission, auditing, pdu
from appliance.dicom.association import Association
from appliance.dicom.closing import Closing
from appliance.dicom.options import AssociationOptions, DicomOptions
from appliance.dicom.pending import Held, Pending, Waiting
from appliance.dicom.slots import Refused, Slots
from appliance.dicom.tls import ServerContexts, peer_certificate

LOG = logging.getLogger("lightbox.dicom")


class Acceptor:
    """Serves listening sockets, maybe shared with other worker processes."""

    def __init__(
        self,
        archive: Archive,
        options: DicomOptions,
        listeners: Sequence[socket.socket],
        slots: Slots | None = None,
        tls_listeners: Sequence[socket.socket] = (),
    ) -> None:
        self.archive = archive
        self.options = options
        self.listeners = [*listeners, *tls_listeners]
        self._tls_listeners = set(tls_listeners)
        self._tls = ServerContexts(options.tls_identity, options.tls_peers) if options.tls_identity else None
        self.slots = slots if slots is not None else Slots(options.max_associations)
        self._lock = threading.Lock()
        self._active: dict[threading.Thread, socket.socket] = {}
        self._stopping = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)  # a full pipe already wakes the thread
        # Refused or aborted by an association's thread, for the accepting thread to hold until
        # the peer closes; None once that thread has stopped (under _lock).
        self._refused: list[tuple[socket.socket, tuple[str, int]]] | None = []
        self._thread = threading.Thread(target=self._accept_loop, name="dicom-accept", daemon=True)
        self._selector = selectors.DefaultSelector()
        self._pending = Pending(options.max_pending, options.associate_timeout)
        o = options
        self._association_options = AssociationOptions(
            o.aet, o.max_pdu, o.max_instance_bytes, o.query_retrieve_from, o.network_timeout, o.idle_timeout,
            o.tls_identity, o.commitment_requires_backup, o.backup_verified,
        )  # fmt: skip

    def start(self) -> None:
        self._thread.start()

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop accepting; let running transfers finish (up to ``grace`` seconds)."""
        self._stopping.set()
        self._wake()
        self._thread.join()
        for listener in self.listeners:
            listener.close()
        deadline = time.monotonic() + grace
        for thread in list(self._active):
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            for sock in self._active.values():
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"x")
        except BlockingIOError:
            pass

    def _close_after_peer(self, sock: socket.socket, address: tuple[str, int]) -> None:
        """From an association's thread: hand a refused or aborted connection to the accepting
        thread, to be closed once the peer has closed it (``closing.py``)."""
        with self._lock:
            if self._refused is not None:
                self._refused.append((sock, address))
                self._wake()
                return
        sock.close()  # stopping: nobody is left to wait for the peer

    # -- the accepting thread ------------------------------------------------------------

    def _accept_loop(self) -> None:
        selector = self._selector
        selector.register(self._wake_read, selectors.EVENT_READ, None)
        for listener in self.listeners:
            listener.setblocking(False)  # a sibling worker may take a connection first
            selector.register(listener, selectors.EVENT_READ, listener)
        while not self._stopping.is_set():
            for key, _ in selector.select(self._pending.next_timeout()):
                try:
                    if isinstance(key.data, Waiting):
                        self._read_request(key.data)
                    elif isinstance(key.data, Closing):
                        if key.data.drain():
                            self._drop(key.data)
                    elif key.data is not None:
                        self._accept(key.data)
                    else:
                        self._take_refused()
                except Exception:  # a bug must cost one connection, never the door
                    LOG.exception("dicom_accept_failed")
                    if isinstance(key.data, Waiting | Closing):
                        self._drop(key.data)
            for late in self._pending.expired():
                if isinstance(late, Waiting):
                    LOG.info("connection_dropped address=%s reason='no A-ASSOCIATE-RQ in time'", late.address[0])
                self._drop(late)
        with self._lock:
            refused, self._refused = self._refused or [], None
        for sock, _ in refused:
            sock.close()
        for held in self._pending.all():
            self._drop(held)
        selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, address = listener.accept()
        except BlockingIOError:
            return  # a sibling worker took it
        except OSError:
            LOG.exception("dicom_accept_failed")
            time.sleep(0.1)
            return
        sock.setblocking(False)
        handshaking = listener in self._tls_listeners
        if handshaking:
            assert self._tls is not None
            try:
                sock = self._tls.current(self.archive).wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
            except (OSError, ValueError) as exc:  # e.g. a node's trusted certificate became unreadable
                LOG.error("tls_unavailable address=%s reason=%r", address[0], str(exc))
                sock.close()
                return
        self._hold(Waiting(sock, address[:2], time.monotonic(), handshaking=handshaking))

    def _hold(self, held: Held) -> None:
        """Watch ``held`` among the connections held without a thread, within their bound."""
        for evicted in self._pending.add(held):
            if isinstance(evicted, Waiting):
                LOG.info("connection_dropped address=%s reason='too many waiting connections'", evicted.address[0])
            self._drop(evicted)
        if held in self._pending:
            self._selector.register(held.sock, selectors.EVENT_READ, held)

    def _close_after(self, sock: socket.socket, address: tuple[str, int]) -> None:
        """Hold a connection just answered with an A-ASSOCIATE-RJ or an A-ABORT until the peer
        closes it, or for ``associate_timeout`` (PS3.8's ARTIM timer, Sta13)."""
        sock.setblocking(False)
        self._hold(Closing(sock, address, time.monotonic()))

    def _take_refused(self) -> None:
        """Woken: stopping, or connections handed over by associations' threads."""
        try:
            os.read(self._wake_read, 4096)
        except BlockingIOError:
            pass
        with self._lock:
            refused, self._refused = self._refused, []
        for sock, address in refused or []:
            self._close_after(sock, address)

    def _drop(self, held: Held) -> None:
        self._pending.remove(held)
        try:
            self._selector.unregister(held.sock)
        except (KeyError, ValueError):
            pass
        held.sock.close()

    def _read_request(self, waiting: Waiting) -> None:
        """More of a waiting connection's A-ASSOCIATE-RQ; once whole, on to a slot and a thread."""
        address = waiting.address
        try:
            body = waiting.read()
            if body is None:
                return
            request = pdu.parse_associate_rq(body)
        except pdu.ProtocolError as exc:
            LOG.warning("association_refused address=%s reason=%r", address[0], str(exc))
            _send_now(waiting.sock, pdu.abort(2, 2))
            self._pending.remove(waiting)
            self._selector.unregister(waiting.sock)
            self._close_after(waiting.sock, address)
            return
        except ssl.SSLError as exc:
            if not isinstance(exc, ssl.SSLEOFError):  # that is a port check, not a refusal
                why = f"TLS: {exc.reason or exc}"
                LOG.warning("association_refused address=%s reason=%r", address[0], why)
                if auditing.refusal_due("", address[0]):  # recorded apart: the door never waits for the index
                    threading.Thread(target=self._record_refusal, args=(address[0], why), daemon=True).start()
            self._drop(waiting)
            return
        except OSError:  # closed before a whole request (e.g. a port check)
            self._drop(waiting)
            return
        self._pending.remove(waiting)
        self._selector.unregister(waiting.sock)
        self._start(waiting.sock, address, request)

    def _record_refusal(self, address: str, why: str) -> None:
        try:
            auditing.record_refusal(self.archive, "", address, why)
        finally:
            self.archive.close_thread_connection()

    def _start(self, sock: socket.socket, address: tuple[str, int], request: pdu.AssociateRequest) -> None:
        slot = None
        if not self._is_probe(request, sock, address):
            try:
                slot = self.slots.claim(address[0], self.options.max_associations, self.options.address_share)
            except Refused as exc:
                LOG.warning(
                    "association_rejected reason=%s calling_ae=%r address=%s", exc, request.calling_title, address[0]
                )
                _send_now(sock, pdu.associate_rj(*pdu.REJECT_LOCAL_LIMIT))
                self._close_after(sock, address)
                return
        sock.setblocking(True)
        sock.settimeout(self.options.network_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # Nagle + delayed ACK: 40 ms a round trip
        thread = threading.Thread(
            target=self._serve,
            args=(sock, address, request, slot),
            name=f"dicom-{address[0]}:{address[1]}",
            daemon=True,
        )
        with self._lock:
            self._active[thread] = sock
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (a limit of the system): give the slot back
            with self._lock:
                self._active.pop(thread, None)
            if slot is not None:
                self.slots.release(slot)
            sock.close()
            raise

    def _is_probe(self, request: pdu.AssociateRequest, sock: socket.socket, address: tuple[str, int]) -> bool:
        """The service's own health check (``appliance.health``): from this machine (the peer's
        address is the one it connected to), calling with a secret AE title made at start-up.
        Served like any association, but neither logged nor recorded as a device, and never
        refused for the cap (a busy archive is not a broken one)."""
        own = self.options.health_aet
        return bool(own) and request.calling_title == own and address[0] == sock.getsockname()[0]

    # -- one association's thread --------------------------------------------------------

    def _serve(
        self, sock: socket.socket, address: tuple[str, int], request: pdu.AssociateRequest, slot: int | None
    ) -> None:
        refused = False  # answered with an A-ASSOCIATE-RJ or an A-ABORT: the peer is to close first
        try:
            if slot is not None and not self._admit(sock, request, address):
                refused = True
                return
            if not request.protocol_version & 1:
                sock.sendall(pdu.associate_rj(*pdu.REJECT_PROTOCOL_VERSION))
                refused = True
                return
            refused = Association(sock, address, request, self.archive, self._association_options).run()
        except (OSError, TimeoutError) as exc:
            LOG.warning("connection_dropped address=%s reason=%r", address[0], str(exc) or type(exc).__name__)
        except Exception:
            LOG.exception("association_failed address=%s", address[0])
        finally:
            with self._lock:
                self._active.pop(threading.current_thread(), None)
            if slot is not None:
                self.slots.release(slot)
            if refused:
                self._close_after_peer(sock, address)
            else:
                sock.close()
            self.archive.close_thread_connection()  # else each thread's index handle outlives it

    def _admit(self, sock: socket.socket, request: pdu.AssociateRequest, address: tuple[str, int]) -> bool:
        """Log the request; admit it under the device policy, else answer A-ASSOCIATE-RJ."""
        LOG.info(
            "association_requested calling_ae=%r called_ae=%r address=%s:%d implementation=%s contexts=%d%s",
            request.calling_title,
            request.called_title,
            address[0],
            address[1],
            request.implementation_class_uid,
            len(request.contexts),
            _tls_words(sock),
        )
        # The AE title in force: an admin may change it in the web UI, without a restart.
        own = self.archive.site.ae_title(self.options.aet) if self.options.called_aet_check == "own" else None
        if (rejection := admission.rejection(self.archive, request, address, own)) is not None:
            sock.sendall(rejection)
            return False
        return True


def _tls_words(sock: socket.socket) -> str:
    """`` tls=TLSv1.3 peer_certificate='CN=...' (sha256 ...)`` on the TLS port, else nothing."""
    if not isinstance(sock, ssl.SSLSocket):
        return ""
    peer = peer_certificate(sock)
    shown = f"{peer.subject!r} sha256={peer.sha256}" if peer else "none"
    return f" tls={sock.version()} peer_certificate={shown}"


def _send_now(sock: socket.socket, data: bytes) -> None:
    """A short answer on a socket not yet served (its send buffer is empty); never blocks."""
    try:
        sock.send(data)
    except OSError:
        pass
