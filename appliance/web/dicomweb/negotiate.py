"""What leaves in which form, decided from the client's Accept (PS3.18 8.7): the transfer
syntax of each instance retrieved, and the media type of frames."""

from __future__ import annotations

from dataclasses import dataclass

import bottle
from pydicom.uid import UID

from appliance.archive import InstanceFile
from appliance.dicom.outgoing import UNCOMPRESSED_LE
from appliance.dicom.syntaxes import EXPLICIT_LE
from appliance.web.dicomweb.accept import MediaRange, parse

OCTETS = "application/octet-stream"
# Stored transfer syntax -> the media type of its frames (PS3.18 Table 8.7.3-5).
FRAME_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg", "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg", "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls", "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2", "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx", "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc", "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc", "1.2.840.10008.1.2.5": "image/dicom-rle",
}  # fmt: skip


@dataclass(frozen=True)
class Outgoing:
    """One instance as it will leave: as stored, or re-encoded to ``syntax``."""

    item: InstanceFile
    syntax: str

    @property
    def as_stored(self) -> bool:
        return self.syntax == self.item.transfer_syntax


def multipart_of(wanted: MediaRange, part_type: str) -> bool:
    """Whether ``wanted`` accepts a multipart/related body of ``part_type`` parts."""
    if wanted.type == "*/*":
        return True
    if wanted.type != "multipart/related":
        return False
    return MediaRange(wanted.params.get("type", part_type).lower()).covers(part_type)


def outgoing_as(item: InstanceFile, accepted: list[MediaRange]) -> Outgoing | None:
    """How ``item`` leaves: the first accepted range it can be sent in, in preference order.
    No ``transfer-syntax`` (or ``*``) accepts the stored one."""
    stored = item.transfer_syntax
    decodable = stored in UNCOMPRESSED_LE or UID(stored).is_compressed
    for wanted in accepted:
        syntax = wanted.params.get("transfer-syntax", "*")
        if syntax in ("*", stored):
            return Outgoing(item, stored)
        if syntax in UNCOMPRESSED_LE and decodable:
            return Outgoing(item, syntax)
    return None


def frame_choice(stored: str, accepted: list[MediaRange]) -> tuple[str, bool] | None:
    """(the parts' media type, whether frames go as stored) for frames stored in ``stored``.
    Native frames go as application/octet-stream; a compressed frame as stored in its own
    media type (image/jp2 ...) when that is accepted, or as an octet-stream part naming its
    syntax when ``transfer-syntax=*`` allows it (what OHIF asks), else decoded."""
    own = FRAME_TYPES.get(stored)
    for wanted in accepted:
        if wanted.type == "*/*":
            part_type, syntax = "*/*", None
        elif wanted.type == "multipart/related":
            part_type, syntax = wanted.params.get("type", OCTETS).lower(), wanted.params.get("transfer-syntax")
        else:
            continue
        if own is not None:
            if MediaRange(part_type).covers(own) and syntax in (None, "*", stored) and part_type != OCTETS:
                return own, True
            if MediaRange(part_type).covers(OCTETS) and syntax in ("*", stored):
                return OCTETS, True
        if MediaRange(part_type).covers(OCTETS) and syntax in (None, "*", EXPLICIT_LE):
            return OCTETS, False
    return None


def accept_header() -> str | None:
    """The Accept header, or the ``accept`` query parameter that replaces it (PS3.18 8.3.3.1)."""
    return bottle.request.query.get("accept") or bottle.request.get_header("Accept")


def choose_multipart(part_type: str, accept: str | None = None) -> str | None:
    header = accept if accept is not None else accept_header()
    return part_type if any(multipart_of(r, part_type) for r in parse(header)) else None


def choose_multipart_or_plain(offered: tuple[str, ...]) -> str | None:
    for wanted in parse(accept_header()):
        for media_type in offered:
            if wanted.covers(media_type) or multipart_of(wanted, media_type):
                return media_type
    return None
