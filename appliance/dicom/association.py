"""One accepted association, served by Lightbox's own loop until release, abort or timeout.

pynetdicom spent 5-6 ms of CPU per received CT slice and ~1 ms per C-FIND match (PDU objects,
4 KiB socket reads, polling threads, dataset copies), more than Orthanc's whole path.  Here one
thread per association negotiates from the table of services (``negotiation.py``), then reads
each request (``Link.read_command``), receives its dataset as its service's row says (a
C-STORE's streams into a spool file, hashed as it goes; an identifier is read into memory),
calls the service and sends its final response.  The association is the services'
``ServiceContext``: while one runs, the same thread watches the socket for the peer's C-CANCEL
and reads the C-STORE-RSPs of C-GET sub-operations; once a request is answered, it may send a
request of its own and read the response (Storage Commitment's N-EVENT-REPORT).
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.archive import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    Archive,
    IngestResult,
    InstanceFile,
    Origin,
    Outcome,
)
from appliance.dicom import auditing, dimse, outgoing, pdu, policy
from appliance.dicom.context import Final, Request
from appliance.dicom.incoming import Unreadable
from appliance.dicom.link import P_DATA_MARGIN, RELEASE, Idle, Limits, Link
from appliance.dicom.negotiation import Bound, Negotiated, negotiate, operations_asked
from appliance.dicom.options import AssociationOptions
from appliance.dicom.services import Service
from appliance.dicom.status import UNABLE_TO_PROCESS

LOG = logging.getLogger("lightbox.dicom")

RECORD_COUNTS_EVERY = 5.0  # seconds between recordings of a device's received counts


class PeerGone(Exception):
    """The peer aborted or released in the middle of an operation."""


@dataclass
class Received:
    """What this association stored, recorded with its device now and then and at the end:
    one write per few seconds, not one more commit (and fsync) per image."""

    images: int = 0
    studies: int = 0
    per_study: Counter[str] = field(default_factory=Counter)  # for the audit trail
    since: float = field(default_factory=time.monotonic)

    def add(self, result: IngestResult) -> None:
        self.images += 1
        self.studies += int(result.new_study)
        self.per_study[result.study_uid] += 1

    def due(self) -> bool:
        return self.images > 0 and time.monotonic() - self.since >= RECORD_COUNTS_EVERY


class Association:
    """Serve one association (its A-ASSOCIATE-RQ already read); a ``ServiceContext``."""

    def __init__(
        self,
        sock: socket.socket,
        address: tuple[str, int],
        request: pdu.AssociateRequest,
        archive: Archive,
        options: AssociationOptions,
    ) -> None:
        max_p_data = options.max_pdu + P_DATA_MARGIN if options.max_pdu else 0
        self.link = Link(sock, request.max_pdu, Limits(options.idle_timeout, options.network_timeout, max_p_data))
        self.request = request
        self.archive = archive
        # The AE title an admin chose on the web page holds from the next association on.
        self.options = dataclasses.replace(options, aet=archive.site.ae_title(options.aet))
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
        self._operation: dimse.Command | None = None  # the request being served
        self._cancelled = False
        self._ended = False  # the peer released or aborted while we waited for its response

    @property
    def calling_ae(self) -> str:
        return self.origin.calling_ae

    def run(self) -> bool:
        """Serve until release, abort or timeout; True when it ended with Lightbox's A-ABORT
        (the peer is then to close the connection first)."""
        refused = policy.refused_operations(
            operations_asked(self.request), self.calling_ae, self.archive.nodes, self.options.query_retrieve_from
        )
        self.negotiated = negotiate(self.request, refused)
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
        calling_ae, address = self.calling_ae, self.origin.address
        try:
            self._serve()
        except pdu.ProtocolError as exc:
            LOG.warning("association_aborted calling_ae=%r address=%s reason=%r", calling_ae, address, str(exc))
            self._send_quietly(pdu.abort(2, 2))
            self.archive.devices.record_error(calling_ae, address, f"aborted: {exc}")
            return True
        except PeerGone as exc:
            LOG.info("association_aborted_by_peer calling_ae=%r during=%s", calling_ae, exc)
        except Idle as exc:  # not the device's fault: some keep associations open between studies
            LOG.info("association_closed calling_ae=%r address=%s reason=%r", calling_ae, address, str(exc))
            self._send_quietly(pdu.abort(2, 0))
            return True
        except (OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            LOG.warning("association_dropped calling_ae=%r address=%s reason=%r", calling_ae, address, reason)
            self.archive.devices.record_error(calling_ae, address, f"dropped: {reason}")
        finally:
            self._record_received()  # after an abort or a drop (a release has recorded them)
        return False

    def _send_quietly(self, data: bytes) -> None:
        try:
            self.link.send_pdu(data)
        except OSError:
            pass

    # -- requests ------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            message = self.link.read_command(dimse.MAX_COMMAND_SET)
            if message == RELEASE:
                self._record_received()  # before the answer: the peer may look at once
                self.link.send_pdu(pdu.release_rp())
                return
            if isinstance(message, str):
                LOG.info("association_aborted_by_peer calling_ae=%r", self.calling_ae)
                return
            context_id, encoded = message
            bound = self.negotiated.accepted.get(context_id)
            if bound is None:
                raise pdu.ProtocolError(f"command on context {context_id}, which was not accepted")
            command = dimse.decode(encoded)
            if command.field != dimse.C_CANCEL_RQ:  # else nothing of ours is running: it came too late
                self._answer(command, context_id, bound)
            if self._ended:
                return

    def _answer(self, command: dimse.Command, context_id: int, bound: Bound) -> None:
        """Receive the request's dataset, serve it, send the final response."""
        service = bound.service
        if command.field not in service.commands:
            raise pdu.ProtocolError(f"DIMSE command 0x{command.field:04X} on a context for {service.name}")
        if command.has_dataset != (service.receive is not None):
            with_or_without = "with" if command.has_dataset else "without"
            raise pdu.ProtocolError(f"DIMSE command 0x{command.field:04X} {with_or_without} a dataset")
        try:
            dataset = self._receive(service, command, context_id, bound.transfer_syntax)
        except Unreadable as exc:
            LOG.warning("request_refused service=%s calling_ae=%r reason=%r", service.name, self.calling_ae, str(exc))
            final = Final(UNABLE_TO_PROCESS, "cannot read the identifier")
        else:
            self._operation, self._cancelled = command, False
            try:
                request = Request(command, context_id, bound.abstract_syntax, bound.transfer_syntax, dataset)
                final = service.serve(self, request)
            finally:
                self._operation = None
        response = dimse.response(
            command, final.status, comment=final.comment, counts=final.counts,
            has_dataset=final.dataset is not None, instance=final.instance,
        )  # fmt: skip
        self.link.send(context_id, response, final.dataset)
        if final.after is not None:
            final.after()

    def _receive(self, service: Service[Any], command: dimse.Command, context_id: int, transfer_syntax: str) -> Any:
        """The request's dataset as its service takes it (None when it has none)."""
        if service.receive is None:
            return None
        incoming = service.receive(self, command, transfer_syntax)
        try:
            ended = self.link.read_dataset(context_id, incoming.write)
            if ended is not None:
                raise PeerGone(f"{ended} during a dataset")
            return incoming.finish()
        except BaseException:
            incoming.discard()
            raise

    # -- ServiceContext ------------------------------------------------------------------

    def respond(self, context_id: int, message: bytes, dataset: bytes | None = None, flush: bool = True) -> None:
        self.link.send(context_id, message, dataset, flush)

    def cancelled(self) -> bool:
        while not self._cancelled and self.link.has_input():
            self._read_during_operation()
        return self._cancelled

    def store_here(self, item: InstanceFile, path: Path, message_id: int) -> int:
        outgoing.send_instance(self.link, item, path, self.negotiated.sendable, message_id)
        while True:
            command = self._read_during_operation()
            if command.field == dimse.C_STORE_RSP and command.us(dimse.MESSAGE_ID_BEING_RESPONDED_TO) == message_id:
                return command.us(dimse.STATUS)

    def request_peer(self, context_id: int, message: bytes, dataset: bytes) -> int | None:
        if self.link.has_input():
            return None
        self.link.send(context_id, message, dataset)
        answer = self.link.read_command(dimse.MAX_COMMAND_SET)
        if isinstance(answer, str):
            self._ended = True
            if answer == RELEASE:
                self._record_received()
                self.link.send_pdu(pdu.release_rp())
            return None
        command, ours = dimse.decode(answer[1]), dimse.decode(message)
        if command.field != ours.field | 0x8000 or command.us(dimse.MESSAGE_ID_BEING_RESPONDED_TO) != ours.us(
            dimse.MESSAGE_ID
        ):
            raise pdu.ProtocolError(f"DIMSE command 0x{command.field:04X} where our request's response was due")
        return command.us(dimse.STATUS)

    def note(self, result: IngestResult) -> None:
        if result.outcome in (Outcome.STORED, Outcome.REPLACED):
            self.received.add(result)
            if self.received.due():
                self._record_received()
        elif not result.ok:
            error = ": ".join(filter(None, (result.outcome.value, result.reason)))
            self.archive.devices.record_error(self.calling_ae, self.origin.address, error)

    def _read_during_operation(self) -> dimse.Command:
        """The peer's next command while a request is served: a C-CANCEL of it, or a C-STORE-RSP."""
        message = self.link.read_command(dimse.MAX_COMMAND_SET)
        if isinstance(message, str):
            raise PeerGone(message)
        command = dimse.decode(message[1])
        if command.field == dimse.C_CANCEL_RQ:
            cancelled = command.us(dimse.MESSAGE_ID_BEING_RESPONDED_TO)
            if self._operation is not None and cancelled == self._operation.us(dimse.MESSAGE_ID):
                self._cancelled = True
        elif command.field != dimse.C_STORE_RSP:
            raise pdu.ProtocolError(f"DIMSE command 0x{command.field:04X} while a request is being answered")
        return command

    def _record_received(self) -> None:
        received, self.received = self.received, Received()
        if received.images:
            self.archive.devices.count_received(self.calling_ae, self.origin.address, received.images, received.studies)
            auditing.received(self.archive, self.calling_ae, self.origin.address, received.per_study)
