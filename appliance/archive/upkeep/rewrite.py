"""A stored file with some top-level attributes changed, streamed: the new file is the stored
one byte for byte, except the elements replaced (encoded anew in the file's transfer syntax
and character set) and an item added to the Original Attributes Sequence (0400,0561) that
records the old values, when and why (PS3.3 C.12.1.1.9).  Pixels are never read, and every
other element keeps its bytes, so a file whose other text lies about its character set is not
damaged by a round trip through a decoder.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from pydicom import charset as dicom_charset
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import data_element_generator, read_dataset
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from appliance.archive.intake.header import read_header
from appliance.archive.storage import read_from

ORIGINAL_ATTRIBUTES = Tag("OriginalAttributesSequence")  # (0400,0561)
SPECIFIC_CHARACTER_SET = Tag("SpecificCharacterSet")  # (0008,0005)
PIXEL_DATA = Tag("PixelData")
MODIFYING_SYSTEM = "LIGHTBOX"
_UTF8 = "ISO_IR 192"
_DEFAULT_REPERTOIRE = ("", "ISO_IR 6")  # ASCII: UTF-8 is a superset, so it can be declared instead


class CannotRewrite(ValueError):
    """The file cannot be given the new values (the reason is for the user)."""


@dataclass(frozen=True)
class _Element:
    tag: int
    start: int
    end: int


class _Encoding:
    """The file's transfer syntax and character set, to encode elements as the file does."""

    def __init__(self, syntax: str, charsets: list[str]) -> None:
        self.implicit = syntax == str(ImplicitVRLittleEndian)
        self.little = syntax != str(ExplicitVRBigEndian)
        self.charsets = charsets

    def encode(self, element: DataElement) -> bytes:
        out = DicomBytesIO()
        out.is_implicit_VR, out.is_little_endian = self.implicit, self.little
        write_data_element(out, element, dicom_charset.convert_encodings(self.charsets or ["ISO_IR 6"]))
        return out.getvalue()

    def decode(self, raw: bytes) -> Dataset:
        ds = read_dataset(BytesIO(raw), self.implicit, self.little)
        ds.SpecificCharacterSet = self.charsets or ""
        return ds

    def can_hold(self, value: str) -> bool:
        if len(self.charsets) <= 1 and (self.charsets or [""])[0] in _DEFAULT_REPERTOIRE:
            return value.isascii()  # pydicom would write such a file's text as Latin-1
        encodings = dicom_charset.convert_encodings(self.charsets)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # pydicom only warns, and substitutes "?"
            try:
                dicom_charset.encode_string(value, encodings)
            except (UnicodeError, UserWarning):
                return False
        return True


def rewritten(path: Path, values: Mapping[str, str], reason: str = "CORRECT") -> Iterator[bytes]:
    """The bytes of the file at ``path`` with the top-level attributes ``values`` (keyword ->
    new text, "" for empty) set, and the old ones recorded in the Original Attributes Sequence.

    Raises CannotRewrite before yielding anything if a value cannot be written in the file's
    character set.
    """
    header = read_header(path)
    syntax = str(header.transfer_syntax)
    stored = _Encoding(syntax, _declared_charsets(header.dataset))
    encoding = _Encoding(syntax, _charsets_for(values.values(), stored))
    tags = {_tag(k): k for k in values}
    if any(tag.group >= ORIGINAL_ATTRIBUTES.group for tag in tags):
        raise CannotRewrite("only attributes before group 0400 can be rewritten")
    with open(path, "rb") as fp:
        elements = _top_level_elements(fp, header.dataset_offset, stored, ORIGINAL_ATTRIBUTES)
        by_tag = {e.tag: e for e in elements}
        old = {k: stored.decode(_read(fp, by_tag[t])).get(k) if t in by_tag else None for t, k in tags.items()}
        previous = Sequence()
        if ORIGINAL_ATTRIBUTES in by_tag:
            previous = stored.decode(_read(fp, by_tag[ORIGINAL_ATTRIBUTES])).OriginalAttributesSequence
    replacements = {tag: DataElement(tag, dictionary_VR(tag), values[keyword]) for tag, keyword in tags.items()}
    if encoding.charsets != stored.charsets:
        replacements[SPECIFIC_CHARACTER_SET] = DataElement(SPECIFIC_CHARACTER_SET, "CS", _UTF8)
    previous.append(_modification(old, tags, reason))
    replacements[ORIGINAL_ATTRIBUTES] = DataElement(ORIGINAL_ATTRIBUTES, "SQ", previous)
    encoded = {tag: encoding.encode(element) for tag, element in replacements.items()}
    for group in {tag.group for tag in replacements}:  # a retired group length would now be wrong
        encoded[Tag(group, 0)] = b""
    return _spliced(path, header.dataset_offset, elements, encoded)


def _tag(keyword: str) -> BaseTag:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise CannotRewrite(f"no DICOM attribute {keyword!r}")
    return Tag(tag)


def _declared_charsets(ds: Dataset) -> list[str]:
    declared = ds.get("SpecificCharacterSet", "") or ""
    return [declared] if isinstance(declared, str) else [str(c) for c in declared]


def _charsets_for(values: Iterable[str], stored: _Encoding) -> list[str]:
    """The character sets the new file declares: the stored ones, or UTF-8 where the file
    declares only ASCII and a value needs more (every ASCII byte means the same in UTF-8)."""
    if all(stored.can_hold(v) for v in values):
        return stored.charsets
    if len(stored.charsets) <= 1 and (stored.charsets or [""])[0] in _DEFAULT_REPERTOIRE:
        return [_UTF8]
    raise CannotRewrite(
        f"the new values need characters that the stored files' character set ({'/'.join(stored.charsets)}) cannot hold"
    )


def _modification(old: Mapping[str, object], tags: Mapping[BaseTag, str], reason: str) -> Dataset:
    """One Original Attributes Sequence item: the values before, when, by whom, why."""
    modified = Dataset()
    for keyword in tags.values():
        if old[keyword] is not None:
            setattr(modified, keyword, old[keyword])
    item = Dataset()
    item.AttributeModificationDateTime = datetime.now(UTC).strftime("%Y%m%d%H%M%S.%f+0000")
    item.ModifiedAttributesSequence = [modified]
    item.ModifyingSystem = MODIFYING_SYSTEM
    item.ReasonForTheAttributeModification = reason
    item.SourceOfPreviousValues = ""
    return item


def _top_level_elements(fp: BinaryIO, offset: int, encoding: _Encoding, last: int) -> list[_Element]:
    """Where each top-level element up to tag ``last`` begins and ends (values are skipped,
    not read)."""
    fp.seek(offset)
    found: list[_Element] = []
    elements = data_element_generator(fp, encoding.implicit, encoding.little, defer_size=256)
    while True:
        start = fp.tell()
        element = next(elements, None)
        if element is None:
            return found
        if element.tag > last or element.tag == PIXEL_DATA:
            return found
        found.append(_Element(element.tag, start, fp.tell()))


def _read(fp: BinaryIO, element: _Element) -> bytes:
    fp.seek(element.start)
    return fp.read(element.end - element.start)


def _spliced(path: Path, offset: int, elements: list[_Element], encoded: Mapping[BaseTag, bytes]) -> Iterator[bytes]:
    """The file with each element of ``encoded`` replacing the stored one or inserted in tag
    order (empty bytes: removed, or nothing); everything else copied in order from the stored file."""
    edits: list[tuple[int, int, bytes]] = []  # (start, end) of the stored bytes replaced, new bytes
    for tag, data in sorted(encoded.items()):
        existing = next((e for e in elements if e.tag == tag), None)
        if existing is not None:
            edits.append((existing.start, existing.end, data))
        else:
            at = next((e.start for e in elements if e.tag > tag), elements[-1].end if elements else offset)
            edits.append((at, at, data))
    edits.sort(key=lambda edit: (edit[0], edit[1]))
    with open(path, "rb") as fp:
        position = 0
        for start, end, data in edits:
            yield from read_from(fp, position, start)
            yield data
            position = end
        yield from read_from(fp, position)
