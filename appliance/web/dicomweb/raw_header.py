"""The header of a stored Explicit VR Little Endian file (most are: every compressed syntax is
too) read as pydicom would with ``stop_before_pixels`` and ``defer_size``, in a few struct calls
an element: pydicom's reader took half of a WADO-RS metadata answer once the JSON came from the
raw elements (raw_json).  The dataset holds RawDataElements (sequences as DataElements of items),
as pydicom's does; anything out of the plain (another syntax, an unknown VR, an undefined length
outside a sequence, a value past the end of the file, a large text value) gives None, and the
caller reads the file with pydicom.  tests/test_dicomweb_raw_json.py holds the two equal.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import NamedTuple

from pydicom import Dataset
from pydicom.charset import default_encoding
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

from appliance.imaging.source import DEFER_BYTES  # larger values are left on disk, unread, as there

PIXEL_TAGS = {tag: keyword_for_tag(tag) for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009)}  # where reading stops
BINARY = {"OB", "OD", "OF", "OL", "OV", "OW"}  # values that may stay unread (BulkDataURIs)
_VRS = {vr.value.encode(): vr.value for vr in VR if len(vr.value) == 2}
_LONG = {vr.encode() for vr in EXPLICIT_VR_LENGTH_32}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_TAG = struct.Struct("<HH")
_ITEM_HEAD = struct.Struct("<HHL")
_LENGTH = struct.Struct("<L")
_SHORT_LENGTH = struct.Struct("<H")


class Header(NamedTuple):
    dataset: Dataset
    syntax: UID
    pixels: tuple[str, str] | None  # the top-level pixel element's keyword and VR


class Unusual(Exception):
    """The file is not one this reader is sure to read as pydicom would."""


def read(path: Path) -> Header | None:
    """The file's header, or None when pydicom must read it."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _read(buf)
    except (Unusual, ValueError, KeyError, OverflowError, OSError, struct.error):  # ValueError: an empty file
        return None


def _read(buf: mmap.mmap) -> Header:
    if buf[128:132] != b"DICM":
        raise Unusual
    reader = _Reader(buf)
    meta, pos = reader.dataset(132, None, default_encoding, part="meta")
    syntax_element = meta.get_item(0x00020010)
    if not isinstance(syntax_element, RawDataElement) or syntax_element.value is None:
        raise Unusual
    syntax = UID(syntax_element.value.decode("ascii").rstrip("\0 "))
    if not syntax.is_transfer_syntax or syntax.is_implicit_VR or not syntax.is_little_endian or syntax.is_deflated:
        raise Unusual
    dataset, pos = reader.dataset(pos, None, default_encoding, part="top")
    pixels = None
    if pos + 6 <= len(buf):  # stopped at a pixel element
        group, element = _TAG.unpack_from(buf, pos)
        pixels = (PIXEL_TAGS[group << 16 | element], _VRS[buf[pos + 4 : pos + 6]])
    return Header(dataset, syntax, pixels)


class _Reader:
    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf

    def dataset(self, pos: int, end: int | None, encoding: str | list[str], part: str = "item") -> tuple[Dataset, int]:
        """The elements from ``pos`` to ``end`` (None: to an item delimiter), or of the file meta
        group (``part="meta"``), or of the top level up to its pixel data (``part="top"``); and
        where reading stopped."""
        buf = self.buf
        size = len(buf)
        elements: dict[BaseTag, RawDataElement | DataElement] = {}
        ds = Dataset(elements, parent_encoding=encoding)
        while pos < (size if end is None else end):
            if size - pos < 8:
                raise Unusual
            tag_group, tag_element = _TAG.unpack_from(buf, pos)
            tag = tag_group << 16 | tag_element
            if part == "meta" and tag_group != 2:
                return ds, pos
            if tag == _ITEM_END and part == "item" and end is None:
                return ds, pos + 8
            if part == "top" and tag in PIXEL_TAGS:
                return ds, pos
            vr_bytes = buf[pos + 4 : pos + 6]
            vr = _VRS.get(vr_bytes)
            if vr is None or tag_group == 0xFFFE:
                raise Unusual
            if vr_bytes in _LONG:
                (length,) = _LENGTH.unpack_from(buf, pos + 8)
                start = pos + 12
            else:
                (length,) = _SHORT_LENGTH.unpack_from(buf, pos + 6)
                start = pos + 8
            if vr == "SQ":
                items, pos = self.sequence(start, length, _item_encoding(ds))
                elements[BaseTag(tag)] = DataElement(tag, vr, Sequence(items), start, length == _UNDEFINED)
                continue
            if length == _UNDEFINED or start + length > (size if end is None else end):
                raise Unusual
            value: bytes | None = None
            if length <= DEFER_BYTES:
                value = buf[start : start + length]
            elif vr not in BINARY:
                raise Unusual  # pydicom reads it when asked: that way is the caller's
            elements[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, length, value, start, False, True)
            pos = start + length
        if end is None and part == "item":
            raise Unusual  # no item delimiter
        return ds, pos

    def sequence(self, pos: int, length: int, encoding: str | list[str]) -> tuple[list[Dataset], int]:
        buf = self.buf
        end = len(buf) if length == _UNDEFINED else pos + length
        if end > len(buf):
            raise Unusual
        items: list[Dataset] = []
        while pos < end:
            if end - pos < 8:
                raise Unusual
            tag_group, tag_element, item_length = _ITEM_HEAD.unpack_from(buf, pos)
            tag = tag_group << 16 | tag_element
            pos += 8
            if tag == _SEQUENCE_END and length == _UNDEFINED:
                return items, pos
            if tag != _ITEM:
                raise Unusual
            item, pos = self.dataset(pos, None if item_length == _UNDEFINED else pos + item_length, encoding)
            items.append(item)
        if length == _UNDEFINED or pos != end:
            raise Unusual  # no sequence delimiter, or an item past the sequence's length
        return items, pos


def _item_encoding(ds: Dataset) -> str | list[str]:
    """The character set a sequence's items inherit; pydicom's two ways of finding it (as it
    reads, and when it converts) differ only for an empty Specific Character Set."""
    charset = ds.get_item(0x00080005)
    if isinstance(charset, RawDataElement) and not (charset.value or b"").strip(b"\0 "):
        raise Unusual
    return ds._character_set
