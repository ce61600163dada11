"""A made dataset stored through the archive's ingest, the one way in: written to the spool
folder already beginning with the meta header Lightbox stores and hashed on the way, so that
ingest moves it into storage rather than copying it (see ``Spooled``); fsynced and committed
before ``store`` returns; nothing left in the spool either way.

A large value (a PDF, a video's stream, an image's pixels) need not be in memory: as a
``Payload`` it is streamed from its file into the spool file at its place among the elements.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian

from appliance.archive import Archive, BoundedSpool, Origin, Outcome, Spooled, build_meta, encode_meta

CHUNK = 1 << 20
PIXEL_DATA = 0x7FE00010  # the tag a picture's or a video's Payload is the value of
_ITEM, _SEQUENCE_END = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


class NotStored(RuntimeError):
    """Ingest refused or failed the instance (a full disk, ...): the reason is the ingest's."""

    def __init__(self, reason: str, disk_full: bool) -> None:
        super().__init__(reason)
        self.disk_full = disk_full


@dataclass(frozen=True)
class Payload:
    """The value of element ``tag`` (OB), read from ``path``: as it is (padded to an even length
    with a NUL), or ``encapsulated`` (PS3.5 A.4: an empty Basic Offset Table, then the whole
    file as one fragment: a JPEG frame, or a video's stream under an H.264 transfer syntax)."""

    tag: int
    path: Path
    encapsulated: bool = False

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def store(
    archive: Archive,
    ds: Dataset,
    origin: Origin,
    transfer_syntax: UID = ExplicitVRLittleEndian,
    payload: Payload | None = None,
) -> str:
    """Store ``ds`` (with ``payload``'s value, if given) in its study (an instance of another
    study is refused); its SOP Instance UID.  ``ds`` must hold its values already encoded for
    ``transfer_syntax`` (encapsulated pixels for a compressed one); an explicit VR little
    endian one."""
    head = encode_meta(build_meta(str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(transfer_syntax), origin))
    size = len(head) + (payload.size + (1 << 16) if payload else 0) + (64 << 20)
    spool = BoundedSpool(archive.storage.spool, size)  # the bound only catches a file growing meanwhile
    try:
        spool.write(head)
        for chunk in _encoded(ds, payload):
            spool.write(chunk)
        spool.finish()
        if spool.error is not None:
            raise NotStored(spool.error, spool.error == "disk full")
        result = archive.ingest(
            spool.path, origin, Spooled(spool.digest.hexdigest(), spool.size), study_uid=str(ds.StudyInstanceUID)
        )
    finally:
        spool.discard()  # gone already if ingest moved it into storage
    if not result.ok:
        raise NotStored(result.reason or result.outcome.value, result.outcome == Outcome.OUT_OF_RESOURCES)
    return str(ds.SOPInstanceUID)


def _encoded(ds: Dataset, payload: Payload | None) -> Iterator[bytes]:
    """The dataset's bytes (explicit VR little endian), ``payload`` streamed at its place."""
    charset = ds.get("SpecificCharacterSet", "ISO_IR 6")
    if payload is None:
        yield _encode(ds, charset)
        return
    tag = Tag(payload.tag)
    yield _encode(Dataset({t: e for t, e in ds.items() if t < tag}), charset)
    size = payload.size
    group, element = tag.group, tag.element
    if payload.encapsulated:
        yield group.to_bytes(2, "little") + element.to_bytes(2, "little") + b"OB\x00\x00\xff\xff\xff\xff"
        yield _ITEM + b"\x00\x00\x00\x00" + _ITEM + (size + size % 2).to_bytes(4, "little")
    else:
        yield group.to_bytes(2, "little") + element.to_bytes(2, "little") + b"OB\x00\x00"
        yield (size + size % 2).to_bytes(4, "little")
    written = 0
    with open(payload.path, "rb") as source:
        while written < size and (chunk := source.read(min(CHUNK, size - written))):
            written += len(chunk)
            yield chunk
    if written != size:
        raise NotStored("the attached file changed while it was stored", False)
    yield b"\x00" * (size % 2)
    if payload.encapsulated:
        yield _SEQUENCE_END
    yield _encode(Dataset({t: e for t, e in ds.items() if t > tag}), charset)


def _encode(ds: Dataset, charset: str | list[str]) -> bytes:
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, ds, parent_encoding=charset)
    return out.getvalue()
