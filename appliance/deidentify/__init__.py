"""De-identification after DICOM PS3.15 Annex E: the Basic Application Level Confidentiality
Profile (Table E.1-1, ``profile.py``) with the Retain Longitudinal Temporal Information with
Modified Dates Option.

- Names, IDs and the other attributes of the table: removed, emptied or a dummy, as it says.
- Dates (DA, DT) are shifted back by a whole number of days, the same for everything made with
  one ``Plan`` (intervals between studies survive); the birth date is emptied, never shifted.
  Times are kept.
- UIDs of the table get a new UID derived from the plan's secret (HMAC-SHA-256 into 2.25.…):
  the same original becomes the same new UID everywhere, in sequences and the file meta too.
- Private attributes, curves (50xx) and overlays (60xx, which can carry text) are removed.
- Burned-in text cannot be removed from pixels: an image that says so, or whose modality or
  class usually has it (ultrasound, secondary captures, photographs, video), is flagged, and
  Burned In Annotation says YES unless the image itself says NO.
- Encapsulated documents (a PDF is text about the patient) and structured reports (the
  profile removes their content) are left out, not half-cleaned.

One instance at a time: the header is read without the pixel data, cleaned and written; the
Pixel Data element is then copied from the stored file in pieces, never loaded whole, and
whatever follows it in the file is dropped.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

from appliance.deidentify.profile import ACTIONS, DUMMY_NAME

CHUNK = 1 << 20
PATIENT_BIRTH_DATE = 0x00100030
BURNED_IN_MODALITIES = frozenset({"US", "SC", "XC", "OT", "ES", "DOC", "GM", "IVUS"})
BURNED_IN_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.7",  # secondary captures
    "1.2.840.10008.5.1.4.1.1.77.1.",  # visible light: photographs, endoscopy, video
    "1.2.840.10008.5.1.4.1.1.6.",  # ultrasound
    "1.2.840.10008.5.1.4.1.1.3.",  # ultrasound multi-frame
)
LEFT_OUT_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.104.": "an encapsulated document (its text names the patient)",
    "1.2.840.10008.5.1.4.1.1.88.": "a structured report (the profile removes its content)",
}
METHOD = "PS3.15 E.1.1 Basic Profile with Modified Dates Option"
METHOD_CODES = (  # CID 7050
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)


class NotDeidentifiable(ValueError):
    """An instance Lightbox leaves out of a de-identified copy (the reason is the message)."""


@dataclass(frozen=True)
class Plan:
    """What makes one de-identified copy consistent: new UIDs and the date shift come from
    ``secret`` (a share link's, or a download's own)."""

    secret: bytes

    def uid(self, original: str) -> str:
        digest = hmac.new(self.secret, b"uid:" + original.encode(), hashlib.sha256).digest()
        return "2.25." + str(int.from_bytes(digest[:16], "big"))

    @property
    def shift_days(self) -> int:
        """Back by one to eleven years, whole days (weekdays move, seasons roughly stay)."""
        digest = hmac.new(self.secret, b"dates", hashlib.sha256).digest()
        return 365 + int.from_bytes(digest[:4], "big") % 3650

    def shift(self, value: str) -> str:
        """A DA, or a DT's date part, shifted; "" for what is not a date."""
        try:
            day = datetime.datetime.strptime(value[:8], "%Y%m%d").date()
        except ValueError:
            return ""
        return (day - datetime.timedelta(days=self.shift_days)).strftime("%Y%m%d") + value[8:]


@dataclass(frozen=True)
class Cleaned:
    sop_uid: str  # the new one
    series_uid: str  # the new one
    burned_in: bool


def left_out(sop_class_uid: str) -> str:
    """Why an instance of this class is left out of a de-identified copy ("" when it is not)."""
    return next((why for prefix, why in LEFT_OUT_CLASSES.items() if sop_class_uid.startswith(prefix)), "")


def may_have_burned_in_text(ds: Dataset) -> bool:
    return (
        str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
        or str(ds.get("Modality", "")).upper() in BURNED_IN_MODALITIES
        or str(ds.get("SOPClassUID", "")).startswith(BURNED_IN_CLASSES)
    )


def _removed_by_rule(tag: int) -> bool:
    group, element = tag >> 16, tag & 0xFFFF
    return (
        bool(group & 1) or (element == 0 and group != 2) or 0x5000 <= group <= 0x60FF and (group >> 8) in (0x50, 0x60)
    )


def _clean(ds: Dataset, plan: Plan) -> None:
    for elem in list(ds):
        tag = int(elem.tag)
        if _removed_by_rule(tag):
            del ds[elem.tag]
            continue
        action = ACTIONS.get(tag, "Z" if elem.VR == "PN" else "K")
        if elem.VR in ("DA", "DT") and tag != PATIENT_BIRTH_DATE and elem.value:
            values = elem.value if elem.VM > 1 else [elem.value]
            shifted = [plan.shift(str(v)) for v in values]
            elem.value = shifted if elem.VM > 1 else shifted[0]
        elif action == "X":
            del ds[elem.tag]
        elif action == "Z":
            elem.value = Sequence() if elem.VR == "SQ" else ""
        elif action == "U" and elem.value:
            values = elem.value if elem.VM > 1 else [elem.value]
            new = [plan.uid(str(v)) for v in values]
            elem.value = new if elem.VM > 1 else new[0]
        elif action == "D" and elem.VR == "PN":
            elem.value = DUMMY_NAME
        elif action == "D" and elem.VR != "SQ":
            elem.value = ""
        if elem.tag in ds and elem.VR == "SQ":
            for item in elem.value or ():
                _clean(item, plan)


def _mark(ds: Dataset, burned_in: bool) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    codes = []
    for value, meaning in METHOD_CODES:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    if burned_in and str(ds.get("BurnedInAnnotation", "")).upper() != "NO":
        ds.BurnedInAnnotation = "YES"


LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})


def _pixel_data_end(source: BinaryIO, start: int, implicit_vr: bool, little_endian: bool) -> int:
    """Where the Pixel Data element that begins at ``start`` ends: what follows it (padding,
    signatures, private groups such as 7FE1) is not copied, since it was never cleaned."""
    size = os.fstat(source.fileno()).st_size
    if start >= size:
        return start  # no pixel data (a presentation state, a waveform)
    order = "<" if little_endian else ">"
    source.seek(start)
    head = source.read(8)
    if len(head) < 8:
        raise NotDeidentifiable("a truncated file")
    if implicit_vr:
        (length,), header = struct.unpack(order + "I", head[4:]), 8
    elif head[4:6] in LONG_VRS:
        (length,), header = struct.unpack(order + "I", source.read(4)), 12
    else:
        (length,), header = struct.unpack(order + "H", head[6:]), 8
    if length != 0xFFFFFFFF:
        return min(start + header + length, size)
    position = start + header  # encapsulated: items up to the sequence delimiter, skipped unread
    while position + 8 <= size:
        source.seek(position)
        group, element, length = struct.unpack("<HHI", source.read(8))
        position += 8
        if (group, element) == (0xFFFE, 0xE0DD):
            return position
        if (group, element) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            break
        position += length
    raise NotDeidentifiable("its encapsulated pixel data is malformed")


def deidentified(path: Path, plan: Plan) -> tuple[Cleaned, Iterator[bytes]]:
    """The de-identified Part 10 bytes of the file at ``path``, in pieces, and what was made;
    raises NotDeidentifiable (before any byte) for an instance left out."""
    source = open(path, "rb")
    try:
        ds = dcmread(source, stop_before_pixels=True)
        pixels_at = source.tell()  # the Pixel Data element's tag: the element is copied as it is
        implicit_vr, little_endian = ds.original_encoding
        pixels_end = _pixel_data_end(source, pixels_at, bool(implicit_vr), little_endian is not False)
        sop_class = str(ds.get("SOPClassUID", ""))
        if why := left_out(sop_class):
            raise NotDeidentifiable(why)
        if ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
            raise NotDeidentifiable("a deflated transfer syntax")
        burned_in = may_have_burned_in_text(ds)
        _clean(ds, plan)
        _mark(ds, burned_in)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if "SourceApplicationEntityTitle" in ds.file_meta:
            del ds.file_meta.SourceApplicationEntityTitle  # an AE title names a place
        head = io.BytesIO()
        ds.save_as(head, enforce_file_format=True)
    except BaseException:
        source.close()
        raise
    cleaned = Cleaned(str(ds.SOPInstanceUID), str(ds.get("SeriesInstanceUID", "")), burned_in)

    def pieces() -> Iterator[bytes]:
        with source:
            yield head.getvalue()
            source.seek(pixels_at)
            left = pixels_end - pixels_at
            while left > 0 and (chunk := source.read(min(CHUNK, left))):
                left -= len(chunk)
                yield chunk

    return cleaned, pieces()
