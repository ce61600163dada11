"""Lightbox as an association requestor sending C-STOREs: the association to a C-MOVE
destination or a forwarding node (``sender.py`` drives it).

pynetdicom's C-MOVE path (pydicom decode and re-encode of every instance, polling threads)
ran at 0.15-0.2x Orthanc's rate; here each stored file's bytes go from disk to the socket in
PDU-sized pieces, and the C-STORE-RSP is read from the same thread.
"""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path

from appliance.archive import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, InstanceFile
from appliance.dicom import dimse, outgoing, pdu
from appliance.dicom.link import Link

LOG = logging.getLogger("lightbox.dicom")


class AssociationFailed(Exception):
    """The peer could not be reached, rejected the association or broke the protocol."""


def associate(
    host: str,
    port: int,
    calling_ae: str,
    called_ae: str,
    contexts: list[tuple[str, list[str]]],
    max_pdu: int,
    timeout: float,
    tls: ssl.SSLContext | None = None,
    roles: dict[str, tuple[bool, bool]] | None = None,
) -> tuple[Link, outgoing.Accepted]:
    """Open an association proposing ``contexts`` (abstract syntax, transfer syntaxes), over
    ``tls`` when given, with the SCP/SCU ``roles`` of ours proposed (abstract syntax -> (SCU,
    SCP)); the link and, per abstract syntax, the accepted transfer syntaxes and their context
    ids.  A context whose proposed roles the peer did not grant counts as not accepted."""
    proposed = [pdu.ProposedContext(2 * n + 1, abstract, syntaxes) for n, (abstract, syntaxes) in enumerate(contexts)]
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise AssociationFailed(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # request/response: no Nagle
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_hostname=host)
            except ssl.SSLError as exc:
                raise AssociationFailed(f"TLS with {host}:{port} failed: {exc.reason or exc}") from exc
        link = Link(sock)
        link.send_pdu(
            pdu.associate_rq(
                called_ae, calling_ae, proposed, max_pdu, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, roles
            )
        )
        pdu_type, length = pdu.HEADER.unpack(link.read_exactly(6))
        if length > pdu.MAX_ASSOCIATE_RQ:
            raise pdu.ProtocolError(f"answer to A-ASSOCIATE-RQ of {length} bytes")
        body = link.read_exactly(length)
        if pdu_type == pdu.ASSOCIATE_RJ:
            raise AssociationFailed(f"association rejected (result {body[1]}, source {body[2]}, reason {body[3]})")
        if pdu_type != pdu.ASSOCIATE_AC:
            raise AssociationFailed(f"unexpected answer to A-ASSOCIATE-RQ (PDU type 0x{pdu_type:02X})")
        accept = pdu.parse_associate_ac(body)
    except (OSError, pdu.ProtocolError) as exc:
        sock.close()
        raise AssociationFailed(f"association with {host}:{port} failed: {exc}") from exc
    except AssociationFailed:
        sock.close()
        raise
    link.set_peer_max_pdu(accept.max_pdu)
    accepted: outgoing.Accepted = {}
    for cx in proposed:
        result = accept.results.get(cx.context_id)
        if result is not None and result.result == pdu.ACCEPTED:
            accepted.setdefault(cx.abstract_syntax, {}).setdefault(result.transfer_syntax, cx.context_id)
    for uid, wanted in (roles or {}).items():
        granted = accept.roles.get(uid, (True, False))  # unanswered: the default roles
        if any(want and not got for want, got in zip(wanted, granted, strict=True)):
            accepted.pop(uid, None)
    return link, accepted


def release(link: Link) -> None:
    """A-RELEASE, waiting briefly for the peer's answer; the socket is closed either way."""
    try:
        link.send_pdu(pdu.release_rq())
        link.sock.settimeout(5)
        link.next_pdv()  # A-RELEASE-RP (or an abort): either way the association is over
    except (OSError, pdu.ProtocolError):
        pass
    finally:
        link.sock.close()


class StoreRequestor:
    def __init__(self, link: Link, accepted: outgoing.Accepted) -> None:
        self.link = link
        self.accepted = accepted
        self._message_id = 0

    @classmethod
    def open(cls, *args: object, **kwargs: object) -> StoreRequestor:
        """Associate (see ``associate``) for sending C-STOREs."""
        return cls(*associate(*args, **kwargs))  # type: ignore[arg-type]

    def store(self, item: InstanceFile, path: Path, originator: tuple[str, int] | None) -> int:
        """C-STORE one instance; its response status.  Raises outgoing.CannotSend before
        anything is sent, AssociationFailed when the association breaks."""
        self._message_id = self._message_id % 0xFFFF + 1
        try:
            outgoing.send_instance(self.link, item, path, self.accepted, self._message_id, originator)
            answer = self.link.read_command(dimse.MAX_COMMAND_SET)
        except (OSError, pdu.ProtocolError) as exc:
            raise AssociationFailed(f"sub-association broke: {exc}") from exc
        if isinstance(answer, str):
            raise AssociationFailed(f"peer sent {answer} instead of a C-STORE-RSP")
        response = dimse.decode(answer[1])
        if response.field != dimse.C_STORE_RSP or response.us(dimse.MESSAGE_ID_BEING_RESPONDED_TO) != self._message_id:
            raise AssociationFailed("peer answered something other than our C-STORE")
        return response.us(dimse.STATUS)

    def release(self) -> None:
        release(self.link)
