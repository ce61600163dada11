"""The DICOM ports: accept, protect, and route each connection.

One thread accepts on every DICOM listening socket (104 and 11112 under systemd), woken by a
pipe to stop: the sockets may be systemd's, shared with sibling workers and with the next
start of the service, so they are closed here but never shut down.  Every accepted socket gets
a timeout (a peer that stalls must not hold a thread forever) and TCP_NODELAY (DIMSE is
request/response; Nagle plus delayed ACKs cost 40 ms a round trip).
Each association is then served by Lightbox's own loop (``association.py``).
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from appliance.archive import Archive
from appliance.dicom import admission, pdu
from appliance.dicom.association import Association
from appliance.dicom.options import AssociationOptions, DicomOptions

LOG = logging.getLogger("lightbox.dicom")


class Acceptor:
    """Serves listening sockets, maybe shared with other worker processes."""

    def __init__(
        self,
        archive: Archive,
        options: DicomOptions,
        listeners: Sequence[socket.socket],
        shared_active: Any = None,
    ) -> None:
        self.archive = archive
        self.options = options
        self.listeners = listeners
        # Associations served by every worker process (a multiprocessing.Value), for the cap.
        self.shared_active = shared_active
        self._lock = threading.Lock()
        self._active: dict[threading.Thread, socket.socket] = {}
        self._stopping = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._accept_loop, name="dicom-accept", daemon=True)
        o = options
        self._association_options = AssociationOptions(
            o.aet, o.max_pdu, o.max_instance_bytes, o.query_retrieve_from, o.network_timeout
        )

    def start(self) -> None:
        self._thread.start()

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop accepting; let running transfers finish (up to ``grace`` seconds)."""
        self._stopping.set()
        os.write(self._wake_write, b"x")
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

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_read, selectors.EVENT_READ, None)
            for listener in self.listeners:
                listener.setblocking(False)  # a sibling worker may take a connection first
                selector.register(listener, selectors.EVENT_READ, listener)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.data is not None:
                        self._accept(key.data)
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
        sock.settimeout(self.options.network_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        thread = threading.Thread(
            target=self._serve, args=(sock, address[:2]), name=f"dicom-{address[0]}:{address[1]}", daemon=True
        )
        with self._lock:
            self._active[thread] = sock
        self._count(+1)
        thread.start()

    def _serve(self, sock: socket.socket, address: tuple[str, int]) -> None:
        try:
            request = self._read_associate_rq(sock)
            if request is None:
                return
            if not self._is_probe(request, sock, address) and not self._admit(sock, request, address):
                return
            if not request.protocol_version & 1:
                sock.sendall(pdu.associate_rj(*pdu.REJECT_PROTOCOL_VERSION))
                return
            Association(sock, address, request, self.archive, self._association_options).run()
        except pdu.ProtocolError as exc:
            LOG.warning("association_refused address=%s reason=%r", address[0], str(exc))
            try:
                sock.sendall(pdu.abort(2, 2))
            except OSError:
                pass
        except (OSError, TimeoutError) as exc:
            LOG.warning("connection_dropped address=%s reason=%r", address[0], str(exc) or type(exc).__name__)
        except Exception:
            LOG.exception("association_failed address=%s", address[0])
        finally:
            with self._lock:
                self._active.pop(threading.current_thread(), None)
            self._count(-1)
            sock.close()

    def _is_probe(self, request: pdu.AssociateRequest, sock: socket.socket, address: tuple[str, int]) -> bool:
        """The service's own health check (``appliance.health``): from this machine (the peer's
        address is the one it connected to), calling with a secret AE title made at start-up.
        Served like any association, but neither logged nor recorded as a device, and never
        refused for the cap (a busy archive is not a broken one)."""
        own = self.options.health_aet
        return bool(own) and request.calling_title == own and address[0] == sock.getsockname()[0]

    def _admit(self, sock: socket.socket, request: pdu.AssociateRequest, address: tuple[str, int]) -> bool:
        """Log the request; admit it under the device policy and the cap, else answer A-ASSOCIATE-RJ."""
        LOG.info(
            "association_requested calling_ae=%r called_ae=%r address=%s:%d implementation=%s contexts=%d",
            request.calling_title,
            request.called_title,
            address[0],
            address[1],
            request.implementation_class_uid,
            len(request.contexts),
        )
        # The AE title in force: an admin may change it in the web UI, without a restart.
        own = self.archive.site.ae_title(self.options.aet) if self.options.called_aet_check == "own" else None
        if (rejection := admission.rejection(self.archive, request, address, own)) is not None:
            sock.sendall(rejection)
            return False
        if self._over_cap():
            LOG.warning("association_rejected reason=too_many_associations address=%s", address[0])
            sock.sendall(pdu.associate_rj(*pdu.REJECT_LOCAL_LIMIT))
            return False
        return True

    def _count(self, delta: int) -> None:
        if self.shared_active is not None:
            with self.shared_active.get_lock():
                self.shared_active.value += delta

    def _over_cap(self) -> bool:
        if self.shared_active is not None:
            ours = self.shared_active.value
        else:
            with self._lock:
                ours = len(self._active)
        return ours > self.options.max_associations

    def _read_associate_rq(self, sock: socket.socket) -> pdu.AssociateRequest | None:
        """The A-ASSOCIATE-RQ, read whole within ``network_timeout``; None when the peer closes
        before sending anything (e.g. a port check)."""
        deadline = time.monotonic() + self.options.network_timeout
        header = self._read(sock, 6, deadline)
        if header is None:
            return None
        pdu_type, length = pdu.HEADER.unpack(header)
        if pdu_type != pdu.ASSOCIATE_RQ:
            raise pdu.ProtocolError(f"expected A-ASSOCIATE-RQ, got PDU type 0x{pdu_type:02X}")
        if length > pdu.MAX_ASSOCIATE_RQ:
            raise pdu.ProtocolError(f"A-ASSOCIATE-RQ of {length} bytes")
        body = self._read(sock, length, deadline)
        if body is None:
            raise ConnectionError("peer closed during A-ASSOCIATE-RQ")
        return pdu.parse_associate_rq(body)

    @staticmethod
    def _read(sock: socket.socket, n: int, deadline: float) -> bytes | None:
        data = bytearray()
        while len(data) < n:
            chunk = sock.recv(min(n - len(data), 65536))
            if not chunk:
                return None
            data += chunk
            if len(data) < n and time.monotonic() > deadline:
                raise TimeoutError("A-ASSOCIATE-RQ incomplete")
        return bytes(data)
