"""Reading a DICOM file's header (never its pixels) and writing the stored file's meta header."""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from appliance import __version__

# Lightbox's Implementation Class UID (a 2.25 UUID-derived root; fixed forever).
IMPLEMENTATION_CLASS_UID = UID("2.25.203942179118474306271547712372613520993")
IMPLEMENTATION_VERSION_NAME = ("LIGHTBOX_" + __version__)[:16]

# Values larger than this stay on disk while we read the header (e.g. an encapsulated PDF).
_DEFER_SIZE = 64 * 1024
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_DATA_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}  # Pixel, Float, Double Float
_MAX_META_VALUE = 1 << 16
_LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


class UnreadableHeader(ValueError):
    """The file is not a DICOM dataset we can parse."""


@dataclass(frozen=True)
class Origin:
    """Where a dataset came from: recorded in the stored file's meta header and the index."""

    via: str  # "dicom", "import", ...
    calling_ae: str = ""
    called_ae: str = ""
    address: str = ""
    port: int = 0
    charset_override: str | None = None  # the sending device's quirk: its files lie about their charset
    user: str = ""  # the web UI's account that made it (a presentation state)

    @property
    def presentation_address(self) -> str:
        return f"dicom://{self.address}:{self.port}" if self.via == "dicom" and self.address else ""


MetaValues = dict[str, str]  # keyword -> value of the meta elements we use (group 0002)


@dataclass
class Header:
    meta: MetaValues  # as found in the file (possibly empty)
    dataset: Dataset  # everything before Pixel Data; large values deferred
    dataset_offset: int  # where the dataset's bytes begin in the file
    transfer_syntax: UID


def read_header(path: Path) -> Header:
    """Parse meta and dataset header of ``path``; raise UnreadableHeader with a reason."""
    try:
        with open(path, "rb") as fp:
            found = _read_meta(fp)
            if found is None:  # no standard meta header: let pydicom work out the encoding
                return _read_header_leniently(fp)
            meta, offset = found
            syntax = UID(meta.get("TransferSyntaxUID") or ExplicitVRLittleEndian)
            if syntax == DeflatedExplicitVRLittleEndian:
                return Header(meta, Dataset(), offset, syntax)  # never inflated; refused by validate
            implicit, little = syntax == ImplicitVRLittleEndian, syntax != ExplicitVRBigEndian
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # we judge the encoding ourselves, just below
                ds = read_dataset(fp, implicit, little, stop_when=_at_pixels, defer_size=_DEFER_SIZE)
            if not implicit and any(isinstance(e, RawDataElement) and e.VR is None for e in _raw_elements(ds)):
                raise UnreadableHeader("dataset is not encoded in its declared transfer syntax (implicit VR)")
            truncated = _truncation(ds, fp)
    except UnreadableHeader:
        raise
    except Exception as exc:  # pydicom raises many types on malformed input
        raise UnreadableHeader(f"unreadable DICOM header: {exc}") from exc
    if len(ds) == 0:
        raise UnreadableHeader("no DICOM dataset found")
    if truncated:
        raise UnreadableHeader(truncated)
    return Header(meta, ds, offset, syntax)


def part10_meta(fp: BinaryIO) -> tuple[MetaValues, int] | None:
    """The meta values of a standard Part 10 file and where its dataset begins (``fp`` is left
    there); None when the meta header is unusual."""
    return _read_meta(fp)


def dataset_offset(fp: BinaryIO) -> int | None:
    """Where the dataset begins in a standard Part 10 file (``fp`` is left there); None when
    the meta header is unusual (the caller then re-encodes the file with pydicom)."""
    found = _read_meta(fp)
    return None if found is None else found[1]


def _at_pixels(tag: int, vr: str | None, length: int) -> bool:
    return (tag >> 16, tag & 0xFFFF) in _PIXEL_DATA_TAGS


def _raw_elements(ds: Dataset):
    """The top-level elements as read.  pydicom's own iterators would read deferred values
    (a 200 MB waveform, an encapsulated PDF) into memory."""
    return ds._dict.values()


def _read_meta(fp: BinaryIO) -> tuple[MetaValues, int] | None:
    """The meta group of a standard Part 10 file, read directly (pydicom's reader costs ~0.2 ms
    per file on the ingest path); None for anything unusual, left to pydicom."""
    head = fp.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        return None
    meta: MetaValues = {}
    while True:
        position = fp.tell()
        element = fp.read(8)
        if len(element) < 8 or struct.unpack_from("<H", element)[0] != 0x0002:
            fp.seek(position)
            return meta, position
        group, number = struct.unpack_from("<HH", element)
        tag = (group << 16) | number
        vr = element[4:6]
        if not (vr.isalpha() and vr.isupper()):
            return None  # implicit VR meta header: not standard, let pydicom cope
        if vr in _LONG_LENGTH_VRS:
            length = struct.unpack("<L", fp.read(4))[0]
        else:
            length = struct.unpack_from("<H", element, 6)[0]
        if length > _MAX_META_VALUE:
            raise UnreadableHeader("unreadable DICOM header: oversized meta element")
        value = fp.read(length)
        keyword = _META_KEYWORDS.get(tag)
        if keyword and vr != b"OB":
            meta[keyword] = value.decode("ascii", "replace").strip(" \x00")


def _read_header_leniently(fp: BinaryIO) -> Header:
    fp.seek(0)
    read_preamble(fp, force=True)
    file_meta = _read_file_meta_info(fp)
    offset = fp.tell()
    fp.seek(0)
    ds = dcmread(fp, stop_before_pixels=True, defer_size=_DEFER_SIZE, force=True)
    if len(ds) == 0:
        raise UnreadableHeader("no DICOM dataset found")
    truncated = _truncation(ds, fp)
    if truncated:
        raise UnreadableHeader(truncated)
    meta = {e.keyword: str(e.value).strip(" \x00") for e in file_meta if e.keyword in _META_ELEMENTS and e.VR != "OB"}
    syntax = meta.get("TransferSyntaxUID") or _guess_syntax(ds)
    return Header(meta, ds, offset, UID(str(syntax)))


def _truncation(ds: Dataset, fp: BinaryIO) -> str | None:
    """Why the file ends before its elements do (a half-copied file), or None.

    pydicom reads a value cut short by the end of the file without complaint, so a truncated
    file would be stored as if whole.  Checked without reading values: each top-level
    element read, then the header of Pixel Data, where ``dcmread`` stopped before it.
    """
    size = os.fstat(fp.fileno()).st_size
    for elem in _raw_elements(ds):
        if (
            isinstance(elem, RawDataElement)
            and elem.length != _UNDEFINED_LENGTH
            and elem.value_tell + elem.length > size
        ):
            return f"truncated file: {elem.tag} runs past the end of the file"
    position = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return None
    implicit, little = ds.original_encoding
    endian = "<" if little else ">"
    if struct.unpack(endian + "HH", head[:4]) not in _PIXEL_DATA_TAGS:
        return None
    if implicit:
        length, header_size = struct.unpack(endian + "L", head[4:8])[0], 8
    elif head[4:6] in _LONG_LENGTH_VRS:
        if len(head) < 12:
            return "truncated file: Pixel Data header cut short"
        length, header_size = struct.unpack(endian + "L", head[8:12])[0], 12
    else:
        length, header_size = struct.unpack(endian + "H", head[6:8])[0], 8
    if length != _UNDEFINED_LENGTH and position + header_size + length > size:
        return "truncated file: Pixel Data runs past the end of the file"
    return None


def _guess_syntax(ds: Dataset) -> UID:
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


MetaHeader = dict[str, "str | bytes"]  # keyword -> value, group 0002 only

# The meta elements Lightbox writes, with their tags and VRs (PS3.10 Table 7.1-1).
_META_ELEMENTS: dict[str, tuple[int, str]] = {
    "FileMetaInformationVersion": (0x00020001, "OB"),
    "MediaStorageSOPClassUID": (0x00020002, "UI"),
    "MediaStorageSOPInstanceUID": (0x00020003, "UI"),
    "TransferSyntaxUID": (0x00020010, "UI"),
    "ImplementationClassUID": (0x00020012, "UI"),
    "ImplementationVersionName": (0x00020013, "SH"),
    "SourceApplicationEntityTitle": (0x00020016, "AE"),
    "SendingApplicationEntityTitle": (0x00020017, "AE"),
    "ReceivingApplicationEntityTitle": (0x00020018, "AE"),
    "SourcePresentationAddress": (0x00020026, "UR"),
}
_META_KEYWORDS = {tag: keyword for keyword, (tag, _vr) in _META_ELEMENTS.items()}
_PROVENANCE = (
    "SourceApplicationEntityTitle",
    "SendingApplicationEntityTitle",
    "ReceivingApplicationEntityTitle",
    "SourcePresentationAddress",
)


def stored_meta(header: Header, origin: Origin) -> MetaHeader:
    """The meta header Lightbox writes for the instance in ``header``."""
    ds = header.dataset
    return build_meta(str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(header.transfer_syntax), origin, header.meta)


def build_meta(
    sop_class: str, sop_instance: str, syntax: str, origin: Origin, received: MetaValues | None = None
) -> MetaHeader:
    """The meta header Lightbox writes: identity of the instance, and where it came from.

    PS3.10 7.1 has a place for each provenance item (Source/Sending/Receiving AE titles,
    Source Presentation Address), so the stored file alone can rebuild the index.  For a
    DICOM reception they describe that association; otherwise they are kept as received.
    """
    meta: MetaHeader = {
        "FileMetaInformationVersion": b"\x00\x01",
        "MediaStorageSOPClassUID": sop_class,
        "MediaStorageSOPInstanceUID": sop_instance,
        "TransferSyntaxUID": syntax,
        "ImplementationClassUID": str(IMPLEMENTATION_CLASS_UID),
        "ImplementationVersionName": IMPLEMENTATION_VERSION_NAME,
    }
    if origin.via == "dicom":
        if origin.calling_ae:
            meta["SourceApplicationEntityTitle"] = origin.calling_ae
            meta["SendingApplicationEntityTitle"] = origin.calling_ae
        if origin.called_ae:
            meta["ReceivingApplicationEntityTitle"] = origin.called_ae
        if origin.presentation_address:
            meta["SourcePresentationAddress"] = origin.presentation_address
    elif received is not None:
        for keyword in _PROVENANCE:
            value = received.get(keyword)
            if value:
                meta[keyword] = str(value)
    return meta


def encode_meta(meta: MetaHeader) -> bytes:
    """Preamble, DICM prefix and the encoded meta group: the head of a Part 10 file.

    Hand-encoded (group 0002 is always Explicit VR Little Endian and holds only short strings
    and one OB): pydicom's writer costs ~0.5 ms per instance on the ingest hot path.
    """
    elements = sorted((*_META_ELEMENTS[keyword], value) for keyword, value in meta.items())
    body = b"".join(_encode_meta_element(tag, vr, value) for tag, vr, value in elements)
    group_length = _encode_meta_element(0x00020000, "UL", struct.pack("<I", len(body)))
    return b"\x00" * 128 + b"DICM" + group_length + body


def _encode_meta_element(tag: int, vr: str, value: str | bytes) -> bytes:
    raw = value if isinstance(value, bytes) else value.encode("ascii", "replace")
    if len(raw) % 2:
        raw += b"\x00" if vr in ("UI", "OB") else b" "
    group, element = tag >> 16, tag & 0xFFFF
    if vr.encode() in _LONG_LENGTH_VRS:
        return struct.pack("<HH2s2xI", group, element, vr.encode(), len(raw)) + raw
    return struct.pack("<HH2sH", group, element, vr.encode(), len(raw)) + raw
