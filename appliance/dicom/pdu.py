"""DICOM upper-layer PDUs (PS3.8 section 9.3): what Lightbox reads and writes as an association
acceptor (every service it offers) and as a requestor (C-MOVE destinations, forwarding)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"

ASSOCIATE_RQ, ASSOCIATE_AC, ASSOCIATE_RJ = 0x01, 0x02, 0x03
P_DATA_TF, RELEASE_RQ, RELEASE_RP, ABORT = 0x04, 0x05, 0x06, 0x07

# A-ASSOCIATE-RJ (result, source, reason)
REJECT_LOCAL_LIMIT = (2, 3, 2)  # transient, service provider (presentation), local limit exceeded
REJECT_PROTOCOL_VERSION = (1, 3, 2)  # permanent, service provider, protocol version not supported
REJECT_NO_REASON = (1, 1, 1)  # permanent, service user, no reason given
REJECT_CALLING_AE = (1, 1, 3)  # permanent, service user, calling AE title not recognized
REJECT_CALLED_AE = (1, 1, 7)  # permanent, service user, called AE title not recognized

# Presentation context results
ACCEPTED, ABSTRACT_SYNTAX_NOT_SUPPORTED, TRANSFER_SYNTAXES_NOT_SUPPORTED = 0, 3, 4

HEADER = struct.Struct(">BxL")  # PDU type, reserved, length
MAX_ASSOCIATE_RQ = 1 << 18  # an A-ASSOCIATE-RQ or -AC is a few KB (128 contexts of 40 syntaxes fit)


class ProtocolError(ValueError):
    """The peer broke the upper-layer protocol; the answer is an A-ABORT."""


@dataclass
class ProposedContext:
    context_id: int
    abstract_syntax: str
    transfer_syntaxes: list[str]


@dataclass
class AssociateRequest:
    protocol_version: int
    called_ae: bytes  # raw 16 bytes, echoed in the A-ASSOCIATE-AC
    calling_ae: bytes
    application_context: str = ""
    contexts: list[ProposedContext] = field(default_factory=list)
    max_pdu: int = 0
    implementation_class_uid: str = ""
    implementation_version: str = ""
    # SCP/SCU role selection (PS3.7 D.3.3.4): abstract syntax -> (SCU role, SCP role) proposed
    roles: dict[str, tuple[bool, bool]] = field(default_factory=dict)

    @property
    def calling_title(self) -> str:
        return _ae_text(self.calling_ae)

    @property
    def called_title(self) -> str:
        return _ae_text(self.called_ae)


def _ae_text(raw: bytes) -> str:
    return raw.decode("ascii", "replace").strip(" \x00")


def _uid(raw: bytes) -> str:
    return raw.decode("ascii", "replace").strip(" \x00")


def _items(data: bytes, offset: int, end: int):
    """(type, value) of each item or sub-item (type, reserved, 2-byte length, value)."""
    while offset < end:
        if offset + 4 > end:
            raise ProtocolError("truncated item")
        item_type, length = data[offset], struct.unpack_from(">H", data, offset + 2)[0]
        value = data[offset + 4 : offset + 4 + length]
        if len(value) != length:
            raise ProtocolError("item longer than its PDU")
        yield item_type, value
        offset += 4 + length


def parse_associate_rq(body: bytes) -> AssociateRequest:
    if len(body) < 68:
        raise ProtocolError("A-ASSOCIATE-RQ too short")
    request = AssociateRequest(
        protocol_version=struct.unpack_from(">H", body, 0)[0],
        called_ae=body[4:20],
        calling_ae=body[20:36],
    )
    for item_type, value in _items(body, 68, len(body)):
        if item_type == 0x10:
            request.application_context = _uid(value)
        elif item_type == 0x20:
            if len(value) < 4:
                raise ProtocolError("truncated presentation context")
            context = ProposedContext(value[0], "", [])
            for sub_type, sub_value in _items(value, 4, len(value)):
                if sub_type == 0x30:
                    context.abstract_syntax = _uid(sub_value)
                elif sub_type == 0x40:
                    context.transfer_syntaxes.append(_uid(sub_value))
            request.contexts.append(context)
        elif item_type == 0x50:
            for sub_type, sub_value in _items(value, 0, len(value)):
                if sub_type == 0x51 and len(sub_value) == 4:
                    request.max_pdu = struct.unpack(">L", sub_value)[0]
                elif sub_type == 0x52:
                    request.implementation_class_uid = _uid(sub_value)
                elif sub_type == 0x55:
                    request.implementation_version = _ae_text(sub_value)
                elif sub_type == 0x54:
                    uid, scu, scp = _role(sub_value)
                    request.roles[uid] = (scu, scp)
    return request


def _role(value: bytes) -> tuple[str, bool, bool]:
    if len(value) < 2:
        raise ProtocolError("truncated role selection")
    length = struct.unpack_from(">H", value)[0]
    if len(value) != 2 + length + 2:
        raise ProtocolError("malformed role selection")
    return _uid(value[2 : 2 + length]), bool(value[2 + length]), bool(value[3 + length])


def _role_item(uid: str, scu: bool, scp: bool) -> bytes:
    raw = uid.encode()
    return _item(0x54, struct.pack(">H", len(raw)) + raw + bytes([scu, scp]))


def _item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BxH", item_type, len(value)) + value


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return HEADER.pack(pdu_type, len(body)) + body


@dataclass
class ContextResult:
    context_id: int
    result: int
    transfer_syntax: str


def _user_info(max_pdu: int, implementation_class_uid: str, implementation_version: str, roles: bytes) -> bytes:
    return _item(
        0x50,
        _item(0x51, struct.pack(">L", max_pdu))
        + _item(0x52, implementation_class_uid.encode())
        + _item(0x55, implementation_version.encode())
        + roles,
    )


def associate_ac(
    request: AssociateRequest,
    results: list[ContextResult],
    max_pdu: int,
    implementation_class_uid: str,
    implementation_version: str,
    roles: dict[str, tuple[bool, bool]] | None = None,
) -> bytes:
    """``roles``: the role selections accepted, abstract syntax -> (SCU role, SCP role) of the
    requestor, answered for each one it proposed."""
    items = [_item(0x10, APPLICATION_CONTEXT.encode())]
    for r in results:
        items.append(_item(0x21, bytes([r.context_id, 0, r.result, 0]) + _item(0x40, r.transfer_syntax.encode())))
    role_items = b"".join(_role_item(uid, scu, scp) for uid, (scu, scp) in (roles or {}).items())
    items.append(_user_info(max_pdu, implementation_class_uid, implementation_version, role_items))
    fixed = struct.pack(">H2x", 1) + request.called_ae + request.calling_ae + bytes(32)
    return _pdu(ASSOCIATE_AC, fixed + b"".join(items))


def associate_rq(
    called_ae: str,
    calling_ae: str,
    contexts: list[ProposedContext],
    max_pdu: int,
    implementation_class_uid: str,
    implementation_version: str,
    roles: dict[str, tuple[bool, bool]] | None = None,
) -> bytes:
    """``roles``: the role selections proposed, abstract syntax -> (SCU role, SCP role) of ours."""
    items = [_item(0x10, APPLICATION_CONTEXT.encode())]
    for cx in contexts:
        body = _item(0x30, cx.abstract_syntax.encode()) + b"".join(
            _item(0x40, ts.encode()) for ts in cx.transfer_syntaxes
        )
        items.append(_item(0x20, bytes([cx.context_id, 0, 0, 0]) + body))
    role_items = b"".join(_role_item(uid, scu, scp) for uid, (scu, scp) in (roles or {}).items())
    items.append(_user_info(max_pdu, implementation_class_uid, implementation_version, role_items))
    fixed = struct.pack(">H2x", 1) + _ae_field(called_ae) + _ae_field(calling_ae) + bytes(32)
    return _pdu(ASSOCIATE_RQ, fixed + b"".join(items))


def _ae_field(title: str) -> bytes:
    return title.encode("ascii", "replace")[:16].ljust(16)


@dataclass
class AssociateAccept:
    max_pdu: int = 0
    results: dict[int, ContextResult] = field(default_factory=dict)  # context id -> result
    # The role selections answered: abstract syntax -> (SCU role, SCP role) of the requestor;
    # one not answered leaves the default (the requestor is the SCU only).
    roles: dict[str, tuple[bool, bool]] = field(default_factory=dict)


def parse_associate_ac(body: bytes) -> AssociateAccept:
    if len(body) < 68:
        raise ProtocolError("A-ASSOCIATE-AC too short")
    accept = AssociateAccept()
    for item_type, value in _items(body, 68, len(body)):
        if item_type == 0x21:
            if len(value) < 4:
                raise ProtocolError("truncated presentation context result")
            syntax = next((_uid(v) for t, v in _items(value, 4, len(value)) if t == 0x40), "")
            accept.results[value[0]] = ContextResult(value[0], value[2], syntax)
        elif item_type == 0x50:
            for sub_type, sub_value in _items(value, 0, len(value)):
                if sub_type == 0x51 and len(sub_value) == 4:
                    accept.max_pdu = struct.unpack(">L", sub_value)[0]
                elif sub_type == 0x54:
                    uid, scu, scp = _role(sub_value)
                    accept.roles[uid] = (scu, scp)
    return accept


def release_rq() -> bytes:
    return _pdu(RELEASE_RQ, bytes(4))


def associate_rj(result: int, source: int, reason: int) -> bytes:
    return _pdu(ASSOCIATE_RJ, bytes([0, result, source, reason]))


def release_rp() -> bytes:
    return _pdu(RELEASE_RP, bytes(4))


def abort(source: int = 2, reason: int = 0) -> bytes:
    """A-ABORT; source 2 = service provider, reason 0 = not specified, 2 = unexpected PDU."""
    return _pdu(ABORT, bytes([0, 0, source, reason]))


P_DATA_HEADER = struct.Struct(">BxLLBB")  # PDU type, length; PDV length, context id, control
COMMAND, LAST = 0x01, 0x02  # PDV message control header bits


def p_data_header(context_id: int, control: int, fragment_length: int) -> bytes:
    """The PDU and PDV headers of a P-DATA-TF holding one PDV of ``fragment_length`` bytes."""
    return P_DATA_HEADER.pack(P_DATA_TF, fragment_length + 6, fragment_length + 2, context_id, control)


def p_data(context_id: int, control: int, fragment: bytes) -> bytes:
    """One P-DATA-TF holding one PDV."""
    return p_data_header(context_id, control, len(fragment)) + fragment
