"""A lean association loop for what modalities do all day: C-ECHO and C-STORE.

pynetdicom spends 5-6 ms of CPU per received CT slice (PDU objects, 4 KiB socket reads,
polling threads, dataset copies), more than Orthanc's whole receive path.  Here one thread per
association reads PDUs straight from the socket and streams each dataset fragment into a
spool file that already begins with Lightbox's own meta header, hashing as it goes; ingest
then validates the header and moves the file into storage without copying it.  Associations
that propose anything else (query/retrieve) are handed to pynetdicom untouched.
"""

from __future__ import annotations

import logging
import socket
import struct
from dataclasses import dataclass
from typing import BinaryIO

from pydicom.uid import UID

from appliance.archive import Archive, Origin
from appliance.archive.header import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, build_meta, encode_meta
from appliance.archive.ingest import Spooled
from appliance.dicom import dimse, pdu
from appliance.dicom.contexts import ACCEPTED_SYNTAXES, is_storage_like
from appliance.dicom.spool import BoundedSpool, refusal
from appliance.dicom.status import STATUS_FOR_OUTCOME, VERIFICATION

LOG = logging.getLogger("lightbox.dicom")

_PDV_HEADER = struct.Struct(">LBB")
_CHUNK = 1 << 18


def is_storage_only(request: pdu.AssociateRequest) -> bool:
    """True when every proposed context is one this loop serves."""
    return all(_served(cx.abstract_syntax) for cx in request.contexts)


def _served(abstract_syntax: str) -> bool:
    """Verification, or storage (private and unknown classes included)."""
    return abstract_syntax == VERIFICATION or is_storage_like(UID(abstract_syntax))


def negotiate(request: pdu.AssociateRequest) -> tuple[list[pdu.ContextResult], dict[int, tuple[str, str]]]:
    """Results for the A-ASSOCIATE-AC, and accepted context id -> (abstract, transfer syntax).

    The peer's order of transfer syntaxes is kept: the first acceptable one wins, so an
    ultrasound unit that prefers JPEG gets its images stored as JPEG.
    """
    results, accepted = [], {}
    for cx in request.contexts:
        first = cx.transfer_syntaxes[0] if cx.transfer_syntaxes else ""
        if not _served(cx.abstract_syntax):
            results.append(pdu.ContextResult(cx.context_id, pdu.ABSTRACT_SYNTAX_NOT_SUPPORTED, first))
            continue
        chosen = next((ts for ts in cx.transfer_syntaxes if ts in ACCEPTED_SYNTAXES), None)
        if chosen is None:
            results.append(pdu.ContextResult(cx.context_id, pdu.TRANSFER_SYNTAXES_NOT_SUPPORTED, first))
        else:
            results.append(pdu.ContextResult(cx.context_id, pdu.ACCEPTED, chosen))
            accepted[cx.context_id] = (cx.abstract_syntax, chosen)
    return results, accepted


@dataclass
class AssociationOptions:
    max_pdu: int
    max_instance_bytes: int


class StoreAssociation:
    """Serve one accepted association until release, abort or timeout."""

    def __init__(
        self,
        sock: socket.socket,
        address: tuple[str, int],
        request: pdu.AssociateRequest,
        archive: Archive,
        options: AssociationOptions,
    ) -> None:
        self.sock = sock
        self.reader: BinaryIO = sock.makefile("rb", buffering=_CHUNK)
        self.request = request
        self.archive = archive
        self.options = options
        self.origin = Origin(
            via="dicom",
            calling_ae=request.calling_title,
            called_ae=request.called_title,
            address=address[0],
            port=address[1],
        )
        self.accepted: dict[int, tuple[str, str]] = {}
        self._buffer = bytearray(_CHUNK)

    def run(self) -> None:
        results, self.accepted = negotiate(self.request)
        self.sock.sendall(
            pdu.associate_ac(
                self.request, results, self.options.max_pdu, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
            )
        )
        try:
            self._serve()
        except pdu.ProtocolError as exc:
            LOG.warning("association_aborted calling_ae=%r address=%s reason=%r", self.origin.calling_ae, self.origin.address, str(exc))
            self._send_quietly(pdu.abort(2, 2))
            self.archive.devices.record_error(self.origin.calling_ae, self.origin.address, f"aborted: {exc}")
        except (OSError, TimeoutError) as exc:
            LOG.warning("association_dropped calling_ae=%r address=%s reason=%r", self.origin.calling_ae, self.origin.address, str(exc) or type(exc).__name__)
            self.archive.devices.record_error(self.origin.calling_ae, self.origin.address, f"dropped: {str(exc) or type(exc).__name__}")
        finally:
            self.reader.close()

    def _send_quietly(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def _read_exactly(self, n: int) -> bytes:
        data = self.reader.read(n)
        if data is None or len(data) != n:
            raise ConnectionError("peer closed the connection")
        return data

    def _serve(self) -> None:
        command = bytearray()
        store: tuple[dimse.Command, int, BoundedSpool] | None = None
        try:
            while True:
                pdu_type, length = pdu.HEADER.unpack(self._read_exactly(6))
                if pdu_type == pdu.RELEASE_RQ:
                    self._read_exactly(length)
                    self.sock.sendall(pdu.release_rp())
                    return
                if pdu_type == pdu.ABORT:
                    self._read_exactly(length)
                    LOG.info("association_aborted_by_peer calling_ae=%r", self.origin.calling_ae)
                    return
                if pdu_type != pdu.P_DATA_TF:
                    raise pdu.ProtocolError(f"unexpected PDU type 0x{pdu_type:02X}")
                remaining = length
                while remaining > 0:
                    item_length, context_id, control = _PDV_HEADER.unpack(self._read_exactly(6))
                    value_length = item_length - 2
                    if value_length < 0 or item_length + 4 > remaining:
                        raise pdu.ProtocolError("PDV length exceeds its PDU")
                    remaining -= item_length + 4
                    if context_id not in self.accepted:
                        raise pdu.ProtocolError(f"PDV on context {context_id}, which was not accepted")
                    if control & 1:  # command fragment
                        if len(command) + value_length > dimse.MAX_COMMAND_SET:
                            raise pdu.ProtocolError("command set too large")
                        command += self._read_exactly(value_length)
                        if control & 2:
                            store = self._on_command(dimse.decode(bytes(command)), context_id)
                            command.clear()
                    else:  # dataset fragment
                        if store is None or store[1] != context_id:
                            raise pdu.ProtocolError("dataset fragment without a C-STORE request")
                        self._stream_into(store[2], value_length)
                        if control & 2:
                            current, store = store, None
                            self._finish_store(*current)
        finally:
            if store is not None:
                store[2].discard()

    def _stream_into(self, writer: BoundedSpool, length: int) -> None:
        view = memoryview(self._buffer)
        while length:
            n = min(length, len(self._buffer))
            got = self.reader.readinto(view[:n])
            if not got:
                raise ConnectionError("peer closed the connection mid-dataset")
            writer.write(view[:got])
            length -= got

    def _on_command(self, command: dimse.Command, context_id: int) -> tuple[dimse.Command, int, BoundedSpool] | None:
        field = command.field
        if field == dimse.C_ECHO_RQ:
            self._respond(context_id, dimse.echo_response(command))
            return None
        if field == dimse.C_STORE_RQ and command.has_dataset:
            _abstract, syntax = self.accepted[context_id]
            meta = build_meta(
                command.uid(dimse.AFFECTED_SOP_CLASS), command.uid(dimse.AFFECTED_SOP_INSTANCE), syntax, self.origin
            )
            writer = BoundedSpool(self.archive.storage.spool, self.options.max_instance_bytes, hashed=True)
            writer.write(encode_meta(meta))
            return command, context_id, writer
        raise pdu.ProtocolError(f"unsupported DIMSE command 0x{field:04X} on a storage association")

    def _finish_store(self, command: dimse.Command, context_id: int, writer: BoundedSpool) -> None:
        writer.close()
        try:
            if writer.error is not None:
                status, comment = refusal(self.origin, writer.error)
            else:
                result = self.archive.ingest(writer.path, self.origin, Spooled(writer.digest.hexdigest(), writer.size))
                status, comment = STATUS_FOR_OUTCOME[result.outcome], result.reason
        finally:
            writer.discard()  # gone already if ingest moved it into storage
        self._respond(context_id, dimse.store_response(command, status, comment))

    def _respond(self, context_id: int, command_set: bytes) -> None:
        self.sock.sendall(pdu.p_data(context_id, 0x03, command_set))

