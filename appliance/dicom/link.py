"""One end of an association on the wire: DIMSE messages in and out over P-DATA-TF PDUs.

In: ``read_command`` is the one place a command set is read (a request, a C-STORE-RSP, a
C-CANCEL), ``read_dataset`` hands the dataset after it to a writer piece by piece, straight
from the socket.  Reads come from our own buffer over the socket (so that ``has_input`` can
tell, without blocking, whether the peer sent something, e.g. a C-CANCEL in the middle of a
C-FIND stream).  Out: messages are fragmented to the peer's maximum PDU and may be batched
(``send(..., flush=False)``) so that a stream of small responses costs few system calls; a
stored file's dataset goes from disk to the socket in PDU-sized pieces.  Used by the
association (``association.py``) and by the requestor (``requestor.py``) alike.

Bounds against a hostile peer (``Limits``, the acceptor's side): silence between PDUs is
bounded (``idle_timeout``), and so is each whole PDU once begun (``pdu_timeout``), not each
recv(): a peer trickling a byte at a time cannot hold a thread.  No PDU is read beyond its
size cap: A-RELEASE and A-ABORT bodies are 4 bytes by the standard, a P-DATA-TF at most the
maximum length we offered (with a margin); anything else is a protocol error, answered with
an A-ABORT before its body is read.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BufferedIOBase

from appliance.dicom import pdu

_PDV_HEADER = struct.Struct(">LBB")
_READ_CHUNK = 1 << 18
_FLUSH_AT = 1 << 15  # batched output is sent once it holds this much
MAX_SEND_PDU = 1 << 20  # what we send when the peer says "no limit" (0)
RELEASE, ABORT = "release", "abort"
_FIXED_BODY = 4  # A-RELEASE-RQ, A-RELEASE-RP and A-ABORT (PS3.8 9.3.6 to 9.3.8)
_PDU_NAMES = {pdu.RELEASE_RQ: "A-RELEASE-RQ", pdu.RELEASE_RP: "A-RELEASE-RP", pdu.ABORT: "A-ABORT"}
P_DATA_MARGIN = 1024  # over the offered maximum: some peers count the PDV headers loosely


class Idle(TimeoutError):
    """The peer sent nothing for ``idle_timeout`` seconds between PDUs."""


@dataclass(frozen=True)
class Limits:
    idle_timeout: float  # silence allowed before a PDU begins
    pdu_timeout: float  # time allowed for a whole PDU once its first byte came
    max_p_data: int  # largest P-DATA-TF accepted (0: any)


@dataclass(frozen=True)
class Pdv:
    """A PDV whose header has been read; its ``length`` value bytes are next on the wire."""

    context_id: int
    control: int
    length: int

    @property
    def is_command(self) -> bool:
        return bool(self.control & pdu.COMMAND)

    @property
    def is_last(self) -> bool:
        return bool(self.control & pdu.LAST)


class Link:
    def __init__(self, sock: socket.socket, peer_max_pdu: int = 0, limits: Limits | None = None) -> None:
        self.sock = sock
        self.limits = limits  # None: the socket's own timeout, per recv() (the requestor)
        self._deadline: float | None = None  # of the PDU being read, under ``limits``
        self._buffer = bytearray()
        self._pdu_left = 0  # bytes of the current P-DATA-TF not yet read
        self._out = bytearray()
        self._dataset_buffer: bytearray | None = None  # made on the first dataset received
        self.set_peer_max_pdu(peer_max_pdu)

    def set_peer_max_pdu(self, peer_max_pdu: int) -> None:
        limit = peer_max_pdu if 0 < peer_max_pdu <= MAX_SEND_PDU else MAX_SEND_PDU
        self.max_fragment = max(limit - 6, 16)  # the PDV header (length, id, control) counts

    # -- reading ------------------------------------------------------------------------

    def _until_deadline(self) -> None:
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("a PDU not complete within the network timeout")
            self.sock.settimeout(left)

    def _fill(self) -> None:
        self._until_deadline()
        chunk = self.sock.recv(_READ_CHUNK)
        if not chunk:
            raise ConnectionError("peer closed the connection")
        self._ack_now()
        self._buffer += chunk

    def _ack_now(self) -> None:
        """Acknowledge what was just read at once, not after Linux's delayed-ACK wait (up to
        40 ms): a peer with Nagle's algorithm on (DCMTK as Debian packages it, and the
        modalities built on it) holds its next small PDU until that ACK: 200 small instances
        from such a storescu took 11.4 s without this, 1.5-2.2 s with it (``python -m
        bench.ingest --scenarios small-1assoc --nagle``).  Linux drops quick-ACK mode on its own,
        so it is asked again after each read."""
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            pass  # not a TCP socket (a test's socket pair)

    def read_exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._fill()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def readinto(self, view: memoryview) -> int:
        """Up to ``len(view)`` bytes, from the buffer first, else straight from the socket."""
        if self._buffer:
            n = min(len(view), len(self._buffer))
            view[:n] = self._buffer[:n]
            del self._buffer[:n]
            return n
        self._until_deadline()
        n = self.sock.recv_into(view)
        if not n:
            raise ConnectionError("peer closed the connection mid-dataset")
        self._ack_now()
        return n

    def has_input(self) -> bool:
        """Whether the peer has sent anything not yet read (never blocks)."""
        if self._buffer or (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            return True  # TLS: a record already decrypted is invisible to select()
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def next_pdv(self) -> Pdv | str:
        """The next PDV header, or RELEASE / ABORT when the peer sent that PDU instead."""
        if self._pdu_left == 0:
            self._begin_pdu()
            pdu_type, length = pdu.HEADER.unpack(self.read_exactly(6))
            if pdu_type in _PDU_NAMES:
                if length != _FIXED_BODY:
                    raise pdu.ProtocolError(f"{_PDU_NAMES[pdu_type]} of {length} bytes")
                self.read_exactly(length)
                return ABORT if pdu_type == pdu.ABORT else RELEASE
            if pdu_type != pdu.P_DATA_TF:
                raise pdu.ProtocolError(f"unexpected PDU type 0x{pdu_type:02X}")
            if self.limits is not None and 0 < self.limits.max_p_data < length:
                raise pdu.ProtocolError(f"P-DATA-TF of {length} bytes, over {self.limits.max_p_data}")
            self._pdu_left = length
        item_length, context_id, control = _PDV_HEADER.unpack(self.read_exactly(6))
        if item_length < 2 or item_length + 4 > self._pdu_left:
            raise pdu.ProtocolError("PDV length exceeds its PDU")
        self._pdu_left -= item_length + 4
        return Pdv(context_id, control, item_length - 2)

    def _begin_pdu(self) -> None:
        """Under ``limits``: wait at most ``idle_timeout`` for the next PDU to begin, then give
        it ``pdu_timeout`` to arrive whole."""
        if self.limits is None:
            return
        if not self._buffer:
            self._deadline = None
            self.sock.settimeout(self.limits.idle_timeout)
            try:
                self._fill()
            except TimeoutError:
                raise Idle(f"idle for {self.limits.idle_timeout:g} s") from None
        self._deadline = time.monotonic() + self.limits.pdu_timeout

    def read_command(self, limit: int) -> tuple[int, bytes] | str:
        """A whole command set (context id, bytes), or RELEASE / ABORT.  A dataset fragment here
        is a protocol error: the caller expects a command (a request, a C-STORE-RSP, a C-CANCEL)."""
        command = bytearray()
        context_id: int | None = None
        while True:
            pdv = self.next_pdv()
            if isinstance(pdv, str):
                return pdv
            if not pdv.is_command:
                raise pdu.ProtocolError("dataset fragment where a command was expected")
            if context_id not in (None, pdv.context_id):
                raise pdu.ProtocolError("command fragments on different presentation contexts")
            context_id = pdv.context_id
            if len(command) + pdv.length > limit:
                raise pdu.ProtocolError("command set too large")
            command += self.read_exactly(pdv.length)
            if pdv.is_last:
                return context_id, bytes(command)

    def read_dataset(self, context_id: int, write: Callable[[memoryview], object]) -> str | None:
        """The dataset following the command just read on ``context_id``, handed to ``write``
        piece by piece as it comes off the socket (a view into a buffer reused at once); None
        once it is whole, or RELEASE / ABORT when the peer sent that instead.  A command
        fragment, or one on another context, is a protocol error."""
        if self._dataset_buffer is None:
            self._dataset_buffer = bytearray(_READ_CHUNK)
        view = memoryview(self._dataset_buffer)
        while True:
            pdv = self.next_pdv()
            if isinstance(pdv, str):
                return pdv
            if pdv.is_command or pdv.context_id != context_id:
                raise pdu.ProtocolError("expected a dataset fragment of the request being received")
            left = pdv.length
            while left:
                got = self.readinto(view[: min(left, len(view))])
                write(view[:got])
                left -= got
            if pdv.is_last:
                return None

    # -- writing ------------------------------------------------------------------------

    def send(self, context_id: int, command: bytes, dataset: bytes | None = None, flush: bool = True) -> None:
        """A DIMSE message whose dataset (if any) is in memory."""
        self._fragments(context_id, pdu.COMMAND, memoryview(command))
        if dataset is not None:
            self._fragments(context_id, 0, memoryview(dataset))
        if flush or len(self._out) >= _FLUSH_AT:
            self.flush()

    def _fragments(self, context_id: int, control: int, data: memoryview) -> None:
        step = self.max_fragment
        for start in range(0, max(len(data), 1), step):
            piece = data[start : start + step]
            last = pdu.LAST if start + step >= len(data) else 0
            self._out += pdu.p_data_header(context_id, control | last, len(piece))
            self._out += piece

    def send_file_dataset(self, context_id: int, command: bytes, source: BufferedIOBase, length: int) -> None:
        """A DIMSE message whose dataset is the next ``length`` bytes of ``source``, read in
        PDU-sized pieces and sent without further copies (header and piece in one sendmsg)."""
        self.send(context_id, command)
        buffer = bytearray(min(self.max_fragment, max(length, 1)))
        view = memoryview(buffer)
        left = length
        while True:
            n = min(len(buffer), left)
            got = source.readinto(view[:n]) if n else 0
            if got != n:
                raise OSError("stored file shorter than its index entry")
            left -= n
            header = pdu.p_data_header(context_id, pdu.LAST if left == 0 else 0, n)
            self._sendmsg(header, view[:n])
            if left == 0:
                return

    def _for_sending(self) -> None:
        """A send gets the whole network timeout, not what a read left of its deadline."""
        if self.limits is not None:
            self.sock.settimeout(self.limits.pdu_timeout)

    def _sendmsg(self, header: bytes, piece: memoryview) -> None:
        self._for_sending()
        if isinstance(self.sock, ssl.SSLSocket):  # no sendmsg over TLS; one record, not two
            self.sock.sendall(header + piece)
            return
        sent = self.sock.sendmsg([header, piece])
        total = len(header) + len(piece)
        if sent < total:  # rare: finish with sendall
            rest = (header + bytes(piece))[sent:]
            self.sock.sendall(rest)

    def flush(self) -> None:
        if self._out:
            self._for_sending()
            self.sock.sendall(self._out)
            self._out.clear()

    def send_pdu(self, data: bytes) -> None:
        self.flush()
        self._for_sending()
        self.sock.sendall(data)
