"""Where the document of an Encapsulated Document instance lies in its file (PS3.3 C.24.2).

The value of Encapsulated Document (0042,0011) is found, not read: the header is parsed with
large values left on disk, and the web sends the document from the stored file in pieces.
Its length is Encapsulated Document Length (0042,0015), which excludes the padding byte a DICOM
value of odd length gets (PS3.5 7.1.1).  When that attribute is missing or disagrees with the
value, the padding is recognised the way DCMTK's dcm2pdf does: a PDF ends with "%%EOF" and
maybe a line break, a CDA document with ">" and maybe a line break, STL/OBJ/MTL text is padded
with a NUL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError

# SOP Class UID -> (media type served, file extension, shown in the browser)
TYPES = {
    "1.2.840.10008.5.1.4.1.1.104.1": ("application/pdf", "pdf", True),  # in a sandbox: see web/documents.py
    "1.2.840.10008.5.1.4.1.1.104.2": ("text/xml", "xml", False),  # CDA: XML may carry script, so download
    "1.2.840.10008.5.1.4.1.1.104.3": ("model/stl", "stl", False),
    "1.2.840.10008.5.1.4.1.1.104.4": ("model/obj", "obj", False),
    "1.2.840.10008.5.1.4.1.1.104.5": ("model/mtl", "mtl", False),
}
LABELS = {"pdf": "PDF document", "xml": "CDA document", "stl": "STL model", "obj": "OBJ model", "mtl": "MTL materials"}
_DOCUMENT = 0x00420011
_WANTED = ["SOPClassUID", "SpecificCharacterSet", "DocumentTitle", "EncapsulatedDocument", "EncapsulatedDocumentLength"]
_LAST_BYTE_OF = {"pdf": (b"\n", b"\r", b"F"), "xml": (b"\n", b"\r", b">")}  # what a document without padding ends with


class DocumentError(ValueError):
    """The instance holds no readable encapsulated document."""


@dataclass(frozen=True)
class EncapsulatedDocument:
    offset: int  # of the document's first byte in the stored file
    length: int  # without padding
    media_type: str
    extension: str
    inline: bool  # shown in the browser rather than downloaded
    title: str

    @property
    def label(self) -> str:
        return LABELS[self.extension]


def locate(path: Path) -> EncapsulatedDocument:
    try:
        ds = pydicom.dcmread(path, defer_size=1, specific_tags=_WANTED)
    except (InvalidDicomError, ValueError, struct.error, EOFError, KeyError) as exc:
        raise DocumentError(f"not a readable DICOM file: {exc}") from None
    kind = TYPES.get(str(ds.get("SOPClassUID", "")))
    element = ds.get_item(_DOCUMENT, keep_deferred=True) if _DOCUMENT in ds else None
    if kind is None or element is None:
        raise DocumentError("no encapsulated document in this instance")
    if not isinstance(element, RawDataElement) or element.length in (0, 0xFFFFFFFF):
        raise DocumentError("the encapsulated document is empty or malformed")
    media_type, extension, inline = kind
    stored = element.length
    declared = ds.get("EncapsulatedDocumentLength")
    if isinstance(declared, int) and declared in (stored, stored - 1):
        length = declared
    else:
        length = stored - _padding(path, element.value_tell + stored - 1, extension)
    title = str(ds.get("DocumentTitle", ""))
    return EncapsulatedDocument(element.value_tell, length, media_type, extension, inline, title)


def _padding(path: Path, last_offset: int, extension: str) -> int:
    """1 if the value's last byte is padding, else 0."""
    with open(path, "rb") as f:
        f.seek(last_offset)
        last = f.read(1)
    ends = _LAST_BYTE_OF.get(extension)
    return int(last not in ends) if ends else int(last == b"\x00")
