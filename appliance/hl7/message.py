"""One HL7 v2 message: its bytes decoded by MSH-18, parsed by the ``hl7`` library, and the ACK
that answers it (MSA-1 AA, AE or AR; the reason in MSA-3 and an ERR segment)."""

from __future__ import annotations

import datetime
from typing import Any

import hl7

# MSH-18 (HL7 table 0211) -> Python codec.  Empty MSH-18 means ASCII by the standard; senders
# that leave it empty often send UTF-8 or Latin-1, so that case is decoded as UTF-8, else Latin-1.
CHARSETS = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    **{f"8859/{n}": f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)},
    "ISO IR14": "iso2022_jp",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_1",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "BIG-5": "big5",
}
# HL7 table 0357 (ERR-3): the codes Lightbox answers with.
REQUIRED_FIELD_MISSING, DATA_TYPE_ERROR, TABLE_VALUE_NOT_FOUND = "101", "102", "103"
UNSUPPORTED_MESSAGE_TYPE, UNSUPPORTED_EVENT_CODE, UNKNOWN_KEY, INTERNAL_ERROR = "200", "201", "204", "207"
_TEXT = {"101": "Required field missing", "102": "Data type error", "103": "Table value not found",
         "200": "Unsupported message type", "201": "Unsupported event code", "204": "Unknown key identifier",
         "207": "Application internal error"}  # fmt: skip


class Refused(Exception):
    """A message Lightbox does not act on: ``ack`` (AE or AR), the HL7 error code, a reason
    free of patient data (it is logged and sent back in MSA-3)."""

    def __init__(self, ack: str, code: str, reason: str, message: Any = None) -> None:
        super().__init__(reason)
        self.ack, self.code, self.reason = ack, code, reason
        self.message = message  # as far as it could be read: its MSH names the sender and control ID


def decode(block: bytes) -> hl7.Message:
    """The message in ``block`` (an MLLP block's content), decoded as its MSH-18 says."""
    try:  # every delimiter is ASCII: Latin-1 reads MSH whatever the character set
        header = hl7.parse(block.decode("latin-1"))
        charset = str(header.extract_field("MSH", 1, 18, 1, 1, 1)).strip().upper()
    except Exception:  # the library raises what it raises on non-HL7 input
        raise Refused("AR", DATA_TYPE_ERROR, "not an HL7 v2 message (no MSH segment)") from None
    if charset:
        codec = CHARSETS.get(charset)
        if codec is None:
            raise Refused("AR", TABLE_VALUE_NOT_FOUND, f"character set MSH-18 {charset!r} is not supported", header)
        try:
            return hl7.parse(block.decode(codec))
        except UnicodeDecodeError:
            raise Refused("AE", DATA_TYPE_ERROR, f"the message is not valid {charset}", header) from None
    try:
        return hl7.parse(block.decode("utf-8"))
    except UnicodeDecodeError:
        return hl7.parse(block.decode("latin-1"))


def ack(message: hl7.Message | None, code: str = "AA", text: str = "", error: str = "") -> bytes:
    """The ACK (original mode) for ``message``; for one that could not be parsed, an ACK without
    its control ID.  ASCII: its texts are Lightbox's own."""
    reply = None
    if message is not None:
        try:
            reply = message.create_ack(code, application="LIGHTBOX", facility="")
        except Exception:  # an MSH the library cannot answer (e.g. MSH-9 without its event)
            pass
    if reply is None:
        control = field(message.segment("MSH"), 10) if message is not None else ""
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
        reply = hl7.parse(f"MSH|^~\\&|||LIGHTBOX||{stamp}||ACK^|{control}||2.5\r").create_ack(code)
    lines = str(reply).rstrip("\r").split("\r")
    if text:
        lines[-1] += "|" + reply.escape(text)
    if error:
        lines.append(f"ERR|||{error}^{_TEXT[error]}^HL70357|E||||{reply.escape(text)}")
    return ("\r".join(lines) + "\r").encode("ascii", "replace")


def field(segment: Any, number: int, component: int = 1, repetition: int = 1) -> str:
    """A component of a segment's field, unescaped; "" where absent."""
    try:
        return str(segment.extract_field(1, number, repetition, component, 1)).strip()
    except IndexError:
        return ""
