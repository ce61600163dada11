"""The DICOM port: accept, protect, and route each connection.

Every accepted socket gets a timeout (a peer that stalls must not hold a thread forever) and
TCP_NODELAY (DIMSE is request/response; Nagle plus delayed ACKs cost 40 ms a round trip).
Each association is then served by Lightbox's own loop (``association.py``).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from typing import Any

from appliance.archive import Archive
from appliance.dicom import admission, pdu
from appliance.dicom.association import Association
from appliance.dicom.options import AssociationOptions, DicomOptions

LOG = logging.getLogger("lightbox.dicom")


def listen(options: DicomOptions) -> socket.socket:
    listener = socket.create_server((options.host, options.port), backlog=128)
    LOG.info("dicom_listening aet=%s host=%s port=%d", options.aet, options.host, listener.getsockname()[1])
    return listener


class Acceptor:
    """Serves a listening socket: its own, or one shared with other worker processes."""

    def __init__(
        self,
        archive: Archive,
        options: DicomOptions,
        listener: socket.socket | None = None,
        shared_active: Any = None,
    ) -> None:
        self.archive = archive
        self.options = options
        self.listener = listener or listen(options)
        # Associations served by every worker process (a multiprocessing.Value), for the cap.
        self.shared_active = shared_active
        self._lock = threading.Lock()
        self._active: dict[threading.Thread, socket.socket] = {}
        self._stopping = threading.Event()
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
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
        except OSError:
            pass
        self.listener.close()
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
        while not self._stopping.is_set():
            try:
                sock, address = self.listener.accept()
            except OSError as exc:
                if self._stopping.is_set() or exc.errno in (errno.EINVAL, errno.EBADF):
                    return  # shut down (by us, or by a sibling worker sharing the socket)
                LOG.exception("dicom_accept_failed")
                time.sleep(0.1)
                continue
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
            LOG.info(
                "association_requested calling_ae=%r called_ae=%r address=%s:%d implementation=%s contexts=%d",
                request.calling_title,
                request.called_title,
                address[0],
                address[1],
                request.implementation_class_uid,
                len(request.contexts),
            )
            if (rejection := admission.rejection(self.archive, request, address)) is not None:
                sock.sendall(rejection)
                return
            if self._over_cap():
                LOG.warning("association_rejected reason=too_many_associations address=%s", address[0])
                sock.sendall(pdu.associate_rj(*pdu.REJECT_LOCAL_LIMIT))
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
