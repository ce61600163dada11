"""DIMSE command sets (PS3.7 sections 9.1 and 9.3), always Implicit VR Little Endian: decoding a
request, encoding any service's response, the C-STORE request of a sub-operation, a C-ECHO
request and Storage Commitment's N-EVENT-REPORT request."""

from __future__ import annotations

import struct

from appliance.dicom.pdu import ProtocolError
from appliance.dicom.status import CANCEL, PENDING, SUCCESS

# Command Field values
C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
C_FIND_RQ, C_FIND_RSP = 0x0020, 0x8020
C_GET_RQ, C_GET_RSP = 0x0010, 0x8010
C_MOVE_RQ, C_MOVE_RSP = 0x0021, 0x8021
C_CANCEL_RQ = 0x0FFF
N_CREATE_RQ, N_CREATE_RSP = 0x0140, 0x8140
N_SET_RQ, N_SET_RSP = 0x0120, 0x8120
N_ACTION_RQ, N_ACTION_RSP = 0x0130, 0x8130
N_EVENT_REPORT_RQ, N_EVENT_REPORT_RSP = 0x0100, 0x8100
NO_DATASET, HAS_DATASET = 0x0101, 0x0001
RESPONSE_TO = {
    C_STORE_RQ: C_STORE_RSP, C_ECHO_RQ: C_ECHO_RSP, C_FIND_RQ: C_FIND_RSP, C_GET_RQ: C_GET_RSP, C_MOVE_RQ: C_MOVE_RSP,
    N_CREATE_RQ: N_CREATE_RSP, N_SET_RQ: N_SET_RSP, N_ACTION_RQ: N_ACTION_RSP,
}  # fmt: skip
_NAMES_INSTANCE = frozenset({C_STORE_RQ})  # requests whose response repeats their Affected SOP Instance UID

AFFECTED_SOP_CLASS = 0x00000002
REQUESTED_SOP_CLASS = 0x00000003  # N-SET's and N-ACTION's
COMMAND_FIELD = 0x00000100
MESSAGE_ID = 0x00000110
MESSAGE_ID_BEING_RESPONDED_TO = 0x00000120
DATASET_TYPE = 0x00000800
STATUS = 0x00000900
ERROR_COMMENT = 0x00000902
AFFECTED_SOP_INSTANCE = 0x00001000
REQUESTED_SOP_INSTANCE = 0x00001001
EVENT_TYPE_ID = 0x00001002
ACTION_TYPE_ID = 0x00001008
MOVE_DESTINATION = 0x00000600
PRIORITY = 0x00000700
REMAINING, COMPLETED, FAILED, WARNING = 0x00001020, 0x00001021, 0x00001022, 0x00001023
MOVE_ORIGINATOR_AET = 0x00001030
MOVE_ORIGINATOR_MESSAGE_ID = 0x00001031
_UID_ELEMENTS = (AFFECTED_SOP_CLASS, AFFECTED_SOP_INSTANCE, REQUESTED_SOP_CLASS, REQUESTED_SOP_INSTANCE)

_ELEMENT = struct.Struct("<HHL")
MAX_COMMAND_SET = 64 * 1024  # command sets are a few hundred bytes


class Command(dict):
    """Tag -> raw value bytes, with typed accessors for what we use."""

    def us(self, tag: int) -> int:
        value = self.get(tag)
        if value is None or len(value) != 2:
            raise ProtocolError(f"command element ({tag >> 16:04X},{tag & 0xFFFF:04X}) missing or malformed")
        return struct.unpack("<H", value)[0]

    def text(self, tag: int) -> str:
        """A string element (UI, AE), its padding removed."""
        return self.get(tag, b"").decode("ascii", "replace").strip(" \x00")

    @property
    def field(self) -> int:
        return self.us(COMMAND_FIELD)

    @property
    def has_dataset(self) -> bool:
        return self.us(DATASET_TYPE) != NO_DATASET


def decode(data: bytes) -> Command:
    command = Command()
    offset = 0
    while offset < len(data):
        if offset + 8 > len(data):
            raise ProtocolError("truncated command set")
        group, element, length = _ELEMENT.unpack_from(data, offset)
        value = data[offset + 8 : offset + 8 + length]
        if len(value) != length:
            raise ProtocolError("command element longer than the command set")
        command[(group << 16) | element] = value
        offset += 8 + length
    return command


def _encode_element(tag: int, value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        raw = struct.pack("<H", value)
    else:
        raw = value.encode("ascii", "replace") if isinstance(value, str) else value
        if len(raw) % 2:
            raw += b"\x00" if tag in _UID_ELEMENTS else b" "
    return _ELEMENT.pack(tag >> 16, tag & 0xFFFF, len(raw)) + raw


def encode(elements: dict[int, bytes | str | int]) -> bytes:
    """A command set with its group length, elements in tag order."""
    body = b"".join(_encode_element(tag, elements[tag]) for tag in sorted(elements))
    return _ELEMENT.pack(0, 0, 4) + struct.pack("<L", len(body)) + body


def response(
    request: Command,
    status: int,
    *,
    comment: str = "",
    counts: tuple[int, int, int, int] | None = None,
    has_dataset: bool = False,
    instance: str = "",
) -> bytes:
    """The response to ``request`` (any service's).  ``comment`` goes with a status other than
    success or pending; ``counts`` are the (remaining, completed, failed, warning)
    sub-operations of a retrieve, remaining left out of a final response; ``instance`` the
    Affected SOP Instance UID of a normalized response (an N-CREATE's, made by us if the
    request had none)."""
    field = request.field
    elements: dict[int, bytes | str | int] = {
        AFFECTED_SOP_CLASS: request.get(AFFECTED_SOP_CLASS) or request.get(REQUESTED_SOP_CLASS, b""),
        COMMAND_FIELD: RESPONSE_TO[field],
        MESSAGE_ID_BEING_RESPONDED_TO: request.us(MESSAGE_ID),
        DATASET_TYPE: HAS_DATASET if has_dataset else NO_DATASET,
        STATUS: status,
    }
    if field in _NAMES_INSTANCE:
        elements[AFFECTED_SOP_INSTANCE] = request.get(AFFECTED_SOP_INSTANCE, b"")
    if instance:
        elements[AFFECTED_SOP_INSTANCE] = instance
    if field == N_ACTION_RQ:  # PS3.7 10.3.4: the requested instance and action, answered as affected
        elements[AFFECTED_SOP_CLASS] = request.get(REQUESTED_SOP_CLASS, b"")
        elements[AFFECTED_SOP_INSTANCE] = request.get(REQUESTED_SOP_INSTANCE, b"")
        if ACTION_TYPE_ID in request and status == SUCCESS:
            elements[ACTION_TYPE_ID] = request[ACTION_TYPE_ID]
    if counts is not None:
        remaining, elements[COMPLETED], elements[FAILED], elements[WARNING] = counts
        if status in (PENDING, CANCEL):  # what was left undone
            elements[REMAINING] = remaining
    if comment and status not in (SUCCESS, PENDING):
        elements[ERROR_COMMENT] = comment[:64]
    return encode(elements)


def echo_request(message_id: int, sop_class: str) -> bytes:
    """A C-ECHO-RQ (the service's health check of its own door)."""
    return encode({AFFECTED_SOP_CLASS: sop_class, COMMAND_FIELD: C_ECHO_RQ, MESSAGE_ID: message_id,
                   DATASET_TYPE: NO_DATASET})  # fmt: skip


def event_report_request(message_id: int, sop_class: str, sop_instance: str, event_type: int) -> bytes:
    """An N-EVENT-REPORT-RQ with its Event Information dataset to follow (Storage Commitment's)."""
    return encode({AFFECTED_SOP_CLASS: sop_class, COMMAND_FIELD: N_EVENT_REPORT_RQ, MESSAGE_ID: message_id,
                   DATASET_TYPE: HAS_DATASET, AFFECTED_SOP_INSTANCE: sop_instance,
                   EVENT_TYPE_ID: event_type})  # fmt: skip


def store_request(
    message_id: int, sop_class: str, sop_instance: str, originator: tuple[str, int] | None = None
) -> bytes:
    """A C-STORE-RQ for a retrieve sub-operation; ``originator`` is the C-MOVE requestor's
    (AE title, message id)."""
    elements: dict[int, bytes | str | int] = {
        AFFECTED_SOP_CLASS: sop_class,
        COMMAND_FIELD: C_STORE_RQ,
        MESSAGE_ID: message_id,
        PRIORITY: 0,
        DATASET_TYPE: HAS_DATASET,
        AFFECTED_SOP_INSTANCE: sop_instance,
    }
    if originator is not None:
        elements[MOVE_ORIGINATOR_AET], elements[MOVE_ORIGINATOR_MESSAGE_ID] = originator
    return encode(elements)
