"""C-FIND response identifiers (and a retrieve's Failed SOP Instance UID List) encoded
straight to bytes.

A C-FIND answer is the same set of elements for every match, only the values change; building
a pydicom Dataset per match and encoding it costs ~0.2 ms, which is most of a query that
returns a few hundred studies.  ``FindResponseEncoder`` lays the elements out once per query
and then writes each match's values (Implicit or Explicit VR Little Endian, PS3.5 7.1).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from functools import cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

_LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_BINARY = {"US": "<H", "UL": "<L", "SS": "<h", "SL": "<l", "FL": "<f", "FD": "<d"}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)
SPECIFIC_CHARACTER_SET = 0x00080005
UTF8 = "ISO_IR 192"


@cache
def spec(keyword: str) -> tuple[int, str]:
    """(tag, VR) of a dictionary keyword."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"no DICOM keyword {keyword!r}")
    return tag, dictionary_VR(tag)


def value_bytes(vr: str, value: Any, charset: str) -> bytes:
    """A value as it goes on the wire, padded to even length (UI with NUL, text with space)."""
    if value is None or value == "":
        return b""
    if vr in _BINARY:
        return struct.pack(_BINARY[vr], value)
    raw = str(value).encode(charset)
    if len(raw) % 2:
        raw += b"\x00" if vr == "UI" else b" "
    return raw


class _Writer:
    def __init__(self, explicit: bool) -> None:
        self.explicit = explicit

    def header(self, tag: int, vr: str, length: int) -> bytes:
        group, element = tag >> 16, tag & 0xFFFF
        if not self.explicit:
            return struct.pack("<HHL", group, element, length)
        if vr in _LONG_LENGTH_VRS:
            return struct.pack("<HH2s2xL", group, element, vr.encode(), length)
        return struct.pack("<HH2sH", group, element, vr.encode(), length)

    def element(self, tag: int, vr: str, value: Any, charset: str) -> bytes:
        raw = value_bytes(vr, value, charset)
        return self.header(tag, vr, len(raw)) + raw

    def sequence(self, tag: int, items: Iterable[bytes]) -> bytes:
        parts = [self.header(tag, "SQ", _UNDEFINED)]
        for item in items:
            parts += [struct.pack("<HHL", *_ITEM, _UNDEFINED), item, struct.pack("<HHL", *_ITEM_END, 0)]
        parts.append(struct.pack("<HHL", *_SEQUENCE_END, 0))
        return b"".join(parts)


class FindResponseEncoder:
    """Encodes one query's matches.

    ``fixed``: (tag, VR, value) answered the same for every match (level, Retrieve AE Title);
    ``asked``: (tag, VR) of every element the identifier asked for, answered empty when the
    match has no value; ``item_keys``: for a sequence key, the item keywords to return.
    """

    def __init__(
        self,
        fixed: list[tuple[int, str, str]],
        asked: list[tuple[int, str]],
        returned: Iterable[str],
        item_keys: dict[str, list[str]],
        explicit: bool,
    ) -> None:
        self.writer = _Writer(explicit)
        self.item_keys = item_keys
        slots: dict[int, tuple[str, str | None, str]] = {}  # tag -> (VR, match keyword or None, fixed value)
        for tag, vr in asked:
            slots[tag] = (vr, None, "")
        for keyword in returned:
            tag, vr = spec(keyword)
            slots[tag] = (vr, keyword, "")
        for tag, vr, value in fixed:
            slots[tag] = (vr, None, value)
        slots.pop(SPECIFIC_CHARACTER_SET, None)  # decided per match
        self.layout = sorted(slots.items())

    def encode(self, match: dict[str, Any]) -> bytes:
        charset = "ascii" if all(_is_ascii(v) for v in match.values()) else "utf-8"
        parts = [self.writer.element(SPECIFIC_CHARACTER_SET, "CS", UTF8, "ascii")] if charset == "utf-8" else []
        for tag, (vr, keyword, fixed) in self.layout:
            value = match.get(keyword, "") if keyword else fixed
            if vr == "SQ":
                items = value if isinstance(value, list) else []
                parts.append(self.writer.sequence(tag, self._items(keyword, items, charset)))
            else:
                parts.append(self.writer.element(tag, vr, value, charset))
        return b"".join(parts)

    def _items(self, keyword: str | None, stored: list[dict[str, str]], charset: str) -> Iterable[bytes]:
        keywords = self.item_keys.get(keyword or "", [])
        for item in stored:
            elements = sorted((spec(kw), item.get(kw, "")) for kw in keywords)
            yield b"".join(self.writer.element(tag, vr, value, charset) for (tag, vr), value in elements)


def _is_ascii(value: Any) -> bool:
    if isinstance(value, str):
        return value.isascii()
    if isinstance(value, list):
        return all(_is_ascii(v) for item in value for v in item.values())
    return True
