"""One accepted association, served by Lightbox's own loop: C-ECHO, C-STORE, C-FIND, C-MOVE
and C-GET.

pynetdicom spent 5-6 ms of CPU per received CT slice and ~1 ms per C-FIND match (PDU objects,
4 KiB socket reads, polling threads, dataset copies), more than Orthanc's whole path.  Here one
thread per association reads PDVs straight from the socket.  A C-STORE dataset streams into a
spool file that already begins with Lightbox's own meta header, hashed as it goes; ingest then
validates the header and moves the file into storage without copying it.  A Query/Retrieve
request runs in the same thread, which also watches the socket for the peer's C-CANCEL.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from pydicom.filereader import read_dataset
from pydicom.uid import UID

from appliance.archive import Archive, IngestResult, Origin, Outcome
from appliance.archive import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, build_meta, encode_meta
from appliance.archive import Spooled
from appliance.archive import InstanceFile
from appliance.dicom import dimse, find, outgoing, pdu, policy, retrieve
from appliance.dicom.contexts import ACCEPTED_SYNTAXES, QUERY_RETRIEVE_CLASSES, is_storage_like
from appliance.dicom.link import ABORT, RELEASE, Link
from appliance.dicom.spool import BoundedSpool, refusal
from appliance.dicom.status import STATUS_FOR_OUTCOME, UNABLE_TO_PROCESS, VERIFICATION

LOG = logging.getLogger("lightbox.dicom")

_CHUNK = 1 << 18
RECORD_COUNTS_EVERY = 5.0  # seconds between recordings of a device's received counts
MAX_IDENTIFIER = 1 << 20  # a query identifier is a few hundred bytes; refuse absurd ones
_IDENTIFIER_SYNTAXES = (outgoing.IMPLICIT_LE, outgoing.EXPLICIT_LE)


class PeerGone(Exception):
    """The peer aborted or released in the middle of an operation."""


@dataclass
class Negotiated:
    results: list[pdu.ContextResult] = field(default_factory=list)
    accepted: dict[int, tuple[str, str]] = field(default_factory=dict)  # context id -> (abstract, syntax)
    roles: dict[str, tuple[bool, bool]] = field(default_factory=dict)  # role selections answered
    sendable: outgoing.Accepted = field(default_factory=dict)  # where we may send C-STOREs (C-GET)


def negotiate(request: pdu.AssociateRequest, services: frozenset[str]) -> Negotiated:
    """Accept verification, every storage class (private and unknown ones included) and the
    Query/Retrieve classes in ``services`` (those the calling AE may use).

    The peer's order of transfer syntaxes is kept: the first acceptable one wins, so an
    ultrasound unit that prefers JPEG gets its images stored as JPEG.  A C-GET requestor
    proposes the SCP role for the storage classes it wants back: accepting it lets us send
    those on this association.
    """
    done = Negotiated()
    for cx in request.contexts:
        first = cx.transfer_syntaxes[0] if cx.transfer_syntaxes else ""
        abstract = cx.abstract_syntax
        if abstract in QUERY_RETRIEVE_CLASSES:
            acceptable = _IDENTIFIER_SYNTAXES if abstract in services else ()
        elif abstract == VERIFICATION or is_storage_like(UID(abstract)):
            acceptable = ACCEPTED_SYNTAXES
        else:
            acceptable = ()
        if not acceptable:
            done.results.append(pdu.ContextResult(cx.context_id, pdu.ABSTRACT_SYNTAX_NOT_SUPPORTED, first))
            continue
        chosen = next((ts for ts in cx.transfer_syntaxes if ts in acceptable), None)
        if chosen is None:
            done.results.append(pdu.ContextResult(cx.context_id, pdu.TRANSFER_SYNTAXES_NOT_SUPPORTED, first))
            continue
        done.results.append(pdu.ContextResult(cx.context_id, pdu.ACCEPTED, chosen))
        done.accepted[cx.context_id] = (abstract, chosen)
        if abstract in request.roles:
            scu, scp = request.roles[abstract]
            scp = scp and abstract not in QUERY_RETRIEVE_CLASSES and abstract != VERIFICATION  # storage only
            done.roles[abstract] = (scu, scp)
            if scp:
                done.sendable.setdefault(abstract, {}).setdefault(chosen, cx.context_id)
    return done


@dataclass
class AssociationOptions:
    aet: str
    max_pdu: int
    max_instance_bytes: int
    query_retrieve_from: str
    network_timeout: float


@dataclass
class Received:
    """What this association stored, recorded with its device now and then and at the end:
    one write per few seconds, not one more commit (and fsync) per image."""

    images: int = 0
    studies: int = 0
    since: float = field(default_factory=time.monotonic)

    def add(self, result: IngestResult) -> None:
        self.images += 1
        self.studies += int(result.new_study)

    def due(self) -> bool:
        return self.images > 0 and time.monotonic() - self.since >= RECORD_COUNTS_EVERY


class Association:
    """Serve one association (its A-ASSOCIATE-RQ already read) until release, abort or timeout."""

    def __init__(
        self,
        sock: socket.socket,
        address: tuple[str, int],
        request: pdu.AssociateRequest,
        archive: Archive,
        options: AssociationOptions,
    ) -> None:
        self.link = Link(sock, request.max_pdu)
        self.request = request
        self.archive = archive
        self.options = options
        self.origin = Origin(
            via="dicom",
            calling_ae=request.calling_title,
            called_ae=request.called_title,
            address=address[0],
            port=address[1],
            charset_override=archive.devices.charset_override(request.calling_title, address[0]),
        )
        self.received = Received()
        self.negotiated = Negotiated()
        self._buffer = bytearray(_CHUNK)
        self._operation: dimse.Command | None = None  # the Q/R request being answered
        self._cancelled = False

    @property
    def calling_ae(self) -> str:
        return self.origin.calling_ae

    def run(self) -> None:
        services = policy.allowed_services(
            QUERY_RETRIEVE_CLASSES,
            (cx.abstract_syntax for cx in self.request.contexts),
            self.calling_ae,
            self.archive.nodes,
            self.options.query_retrieve_from,
        )
        self.negotiated = negotiate(self.request, services)
        self.link.send_pdu(
            pdu.associate_ac(
                self.request,
                self.negotiated.results,
                self.options.max_pdu,
                IMPLEMENTATION_CLASS_UID,
                IMPLEMENTATION_VERSION_NAME,
                self.negotiated.roles,
            )
        )
        try:
            self._serve()
        except pdu.ProtocolError as exc:
            LOG.warning("association_aborted calling_ae=%r address=%s reason=%r", self.calling_ae, self.origin.address, str(exc))
            self._send_quietly(pdu.abort(2, 2))
            self.archive.devices.record_error(self.calling_ae, self.origin.address, f"aborted: {exc}")
        except PeerGone as exc:
            LOG.info("association_aborted_by_peer calling_ae=%r during=%s", self.calling_ae, exc)
        except (OSError, TimeoutError) as exc:
            LOG.warning("association_dropped calling_ae=%r address=%s reason=%r", self.calling_ae, self.origin.address, str(exc) or type(exc).__name__)
            self.archive.devices.record_error(self.calling_ae, self.origin.address, f"dropped: {str(exc) or type(exc).__name__}")
        finally:
            self._record_received()  # after an abort or a drop (a release has recorded them)

    def _send_quietly(self, data: bytes) -> None:
        try:
            self.link.send_pdu(data)
        except OSError:
            pass

    # -- the receive loop ---------------------------------------------------------------

    def _serve(self) -> None:
        command = bytearray()
        store: tuple[dimse.Command, int, BoundedSpool] | None = None
        identifier: tuple[dimse.Command, int, bytearray] | None = None
        try:
            while True:
                pdv = self.link.next_pdv()
                if pdv == RELEASE:
                    self._record_received()  # before the answer: the peer may look at once
                    self.link.send_pdu(pdu.release_rp())
                    return
                if pdv == ABORT:
                    LOG.info("association_aborted_by_peer calling_ae=%r", self.calling_ae)
                    return
                assert not isinstance(pdv, str)
                if pdv.context_id not in self.negotiated.accepted:
                    raise pdu.ProtocolError(f"PDV on context {pdv.context_id}, which was not accepted")
                if pdv.is_command:
                    if len(command) + pdv.length > dimse.MAX_COMMAND_SET:
                        raise pdu.ProtocolError("command set too large")
                    command += self.link.read_exactly(pdv.length)
                    if pdv.is_last:
                        request = dimse.decode(bytes(command))
                        command.clear()
                        store, identifier = self._on_command(request, pdv.context_id)
                    continue
                if store is not None and store[1] == pdv.context_id:
                    self._stream_into(store[2], pdv.length)
                    if pdv.is_last:
                        current, store = store, None
                        self._finish_store(*current)
                elif identifier is not None and identifier[1] == pdv.context_id:
                    if len(identifier[2]) + pdv.length > MAX_IDENTIFIER:
                        raise pdu.ProtocolError("query identifier too large")
                    identifier[2].extend(self.link.read_exactly(pdv.length))
                    if pdv.is_last:
                        current_op, identifier = identifier, None
                        self._operate(current_op[0], current_op[1], bytes(current_op[2]))
                else:
                    raise pdu.ProtocolError("dataset fragment without a request")
        finally:
            if store is not None:
                store[2].discard()

    def _stream_into(self, writer: BoundedSpool, length: int) -> None:
        view = memoryview(self._buffer)
        while length:
            got = self.link.readinto(view[: min(length, len(self._buffer))])
            writer.write(view[:got])
            length -= got

    def _on_command(
        self, command: dimse.Command, context_id: int
    ) -> tuple[tuple[dimse.Command, int, BoundedSpool] | None, tuple[dimse.Command, int, bytearray] | None]:
        """(C-STORE being received, Q/R identifier being received) after a request."""
        field_ = command.field
        if field_ == dimse.C_ECHO_RQ:
            self.link.send(context_id, dimse.echo_response(command))
            return None, None
        if field_ == dimse.C_STORE_RQ and command.has_dataset:
            _abstract, syntax = self.negotiated.accepted[context_id]
            meta = build_meta(
                command.text(dimse.AFFECTED_SOP_CLASS), command.text(dimse.AFFECTED_SOP_INSTANCE), syntax, self.origin
            )
            writer = BoundedSpool(self.archive.storage.spool, self.options.max_instance_bytes, hashed=True)
            writer.write(encode_meta(meta))
            return (command, context_id, writer), None
        if field_ in dimse.RESPONSE_TO and command.has_dataset:
            if self.negotiated.accepted[context_id][0] not in QUERY_RETRIEVE_CLASSES:
                raise pdu.ProtocolError(f"DIMSE command 0x{field_:04X} on a context for another service")
            return None, (command, context_id, bytearray())
        if field_ == dimse.C_CANCEL_RQ:
            return None, None  # nothing of ours is running: it came too late
        raise pdu.ProtocolError(f"unsupported DIMSE command 0x{field_:04X}")

    def _finish_store(self, command: dimse.Command, context_id: int, writer: BoundedSpool) -> None:
        writer.close()
        try:
            if writer.error is not None:
                status, comment = refusal(self.origin, writer.error)
            else:
                result = self.archive.ingest(writer.path, self.origin, Spooled(writer.digest.hexdigest(), writer.size))
                status, comment = STATUS_FOR_OUTCOME[result.outcome], result.reason
                self._note(result)
        finally:
            writer.discard()  # gone already if ingest moved it into storage
        self.link.send(context_id, dimse.store_response(command, status, comment))

    def _note(self, result: IngestResult) -> None:
        """The device's counts and last error (what intake does not know about)."""
        if result.outcome in (Outcome.STORED, Outcome.REPLACED):
            self.received.add(result)
            if self.received.due():
                self._record_received()
        elif not result.ok:
            error = ": ".join(filter(None, (result.outcome.value, result.reason)))
            self.archive.devices.record_error(self.calling_ae, self.origin.address, error)

    def _record_received(self) -> None:
        if self.received.images:
            self.archive.devices.count_received(self.calling_ae, self.origin.address, self.received.images, self.received.studies)
        self.received = Received()

    # -- Query/Retrieve ----------------------------------------------------------------

    def _operate(self, command: dimse.Command, context_id: int, encoded: bytes) -> None:
        abstract, syntax = self.negotiated.accepted[context_id]
        self._operation, self._cancelled = command, False
        try:
            try:
                identifier = read_dataset(BytesIO(encoded), syntax == outgoing.IMPLICIT_LE, True)
                len(identifier)  # parse it now: a broken one must fail here
            except Exception as exc:  # pydicom raises many types on malformed input
                LOG.warning("query_refused calling_ae=%r reason=%r", self.calling_ae, f"unreadable identifier: {exc}")
                self.respond(context_id, dimse.operation_response(command, UNABLE_TO_PROCESS, comment="cannot read the identifier"))
                return
            if command.field == dimse.C_FIND_RQ:
                find.serve(self, context_id, command, identifier, abstract)
            elif command.field == dimse.C_MOVE_RQ:
                retrieve.serve_move(self, context_id, command, identifier, abstract)
            else:
                retrieve.serve_get(self, context_id, command, identifier, abstract)
        finally:
            self._operation = None

    def is_explicit(self, context_id: int) -> bool:
        return self.negotiated.accepted[context_id][1] == outgoing.EXPLICIT_LE

    def respond(self, context_id: int, response: bytes, dataset: bytes | None = None, flush: bool = True) -> None:
        self.link.send(context_id, response, dataset, flush)

    def cancelled(self) -> bool:
        """Whether the peer has cancelled the running operation (reads what it sent, if anything,
        without blocking)."""
        while not self._cancelled and self.link.has_input():
            self._read_during_operation()
        return self._cancelled

    def _read_during_operation(self) -> dimse.Command:
        answer = self.link.read_command(dimse.MAX_COMMAND_SET)
        if isinstance(answer, str):
            raise PeerGone(answer)
        command = dimse.decode(answer[1])
        if command.field == dimse.C_CANCEL_RQ:
            if self._operation is not None and command.us(dimse.MESSAGE_ID_BEING_RESPONDED_TO) == self._operation.us(dimse.MESSAGE_ID):
                self._cancelled = True
        elif command.field != dimse.C_STORE_RSP:
            raise pdu.ProtocolError(f"DIMSE command 0x{command.field:04X} while a request is being answered")
        return command

    def store_here(self, item: InstanceFile, path: Path, message_id: int) -> int:
        """A C-GET sub-operation: C-STORE ``item`` to the peer on this association; the status."""
        outgoing.send_instance(self.link, item, path, self.negotiated.sendable, message_id)
        while True:
            command = self._read_during_operation()
            if command.field == dimse.C_STORE_RSP and command.us(dimse.MESSAGE_ID_BEING_RESPONDED_TO) == message_id:
                return command.us(dimse.STATUS)

