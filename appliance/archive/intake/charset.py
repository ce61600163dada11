"""Text from DICOM headers: character sets as they are, and as devices send them.

pydicom decodes the Specific Character Sets of the standard (ISO_IR 100, ISO_IR 192, ISO 2022
with escape sequences, GB18030, ...).  On top of that we repair the usual lies:

* ``ISO_IR 100`` files written by Windows software in Windows-1252: bytes 0x80-0x9F are C1
  control codes in Latin-1 and never appear in a real name, but are ``€ ‚ ƒ „ … † ‡ ˆ ‰ Š ‹ Œ``
  etc. in Windows-1252.
* No Specific Character Set (so ASCII) but bytes above 0x7F: UTF-8 if they decode as UTF-8,
  else Windows-1252.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Iterable
from functools import cache

from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
_LATIN1_TERMS = {"ISO_IR 100", "ISO 2022 IR 100"}
_ASCII_TERMS = {"", "ISO_IR 6", "ISO 2022 IR 6"}
_C1_CONTROLS = re.compile(rb"[\x80-\x9f]")


def declared_charsets(ds: Dataset) -> list[str]:
    """The dataset's Specific Character Set values, stripped (empty list when absent)."""
    value = ds.get("SpecificCharacterSet")
    if not value:
        return []
    values = list(value) if isinstance(value, MultiValue) else [value]
    return [str(v).strip() for v in values]


def effective_encodings(raw_value: bytes, charsets: Iterable[str], override: str | None = None) -> list[str]:
    """The encodings to decode ``raw_value`` with: the declared ones, unless they are a known lie."""
    if override:
        return [override]
    charsets = list(charsets)
    if not charsets or all(c in _ASCII_TERMS for c in charsets):
        if raw_value.isascii():
            return ["ISO_IR 6"]
        try:
            raw_value.decode("utf-8")
            return ["ISO_IR 192"]
        except UnicodeDecodeError:
            return ["cp1252"]
    if set(charsets) <= _LATIN1_TERMS | _ASCII_TERMS and _C1_CONTROLS.search(raw_value):
        return ["cp1252"]
    return charsets


@cache
def _tag(keyword: str) -> BaseTag:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"no DICOM keyword {keyword!r}")
    return BaseTag(tag)


def text(ds: Dataset, keyword: str, charsets: list[str] | None = None, override: str | None = None) -> str:
    """The value of a text or person-name element as one ``str`` ('' when absent).

    Multiple values are joined with backslashes, as DICOM writes them.
    """
    tag = _tag(keyword)
    if tag not in ds._dict:  # the private dict: Dataset.__contains__ re-parses the keyword each time
        return ""
    elem = ds.get_item(tag)
    if isinstance(elem, RawDataElement):
        raw_value = elem.value or b""
        if raw_value.isascii() and b"\x1b" not in raw_value and (elem.VR or dictionary_VR(elem.tag)) in _TEXT_VRS:
            # The usual case (plain ASCII, no ISO 2022 escape sequence): the same result as
            # pydicom's decoding at a fraction of its cost.
            return raw_value.decode("ascii").strip(" \x00")
        if charsets is None:
            charsets = declared_charsets(ds)
        encodings = effective_encodings(raw_value, charsets, override)
        with warnings.catch_warnings():
            # pydicom warns and replaces undecodable bytes; the replacement is what we want.
            warnings.simplefilter("ignore")
            elem = convert_raw_data_element(elem, encoding=convert_encodings(encodings), ds=ds)
    return _as_text(elem)


def _as_text(elem: DataElement) -> str:
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, (list, MultiValue)):
        return "\\".join("" if v is None else str(v) for v in value).strip()
    return str(value).strip()


def normalise_name(name: str) -> str:
    """A person name folded for case- and accent-insensitive matching.

    Components stay separated by ``^`` and groups by ``=`` so that DICOM wildcard matching
    still works on the folded form; empty trailing components are dropped.
    """
    decomposed = unicodedata.normalize("NFKD", name)
    # Only the Latin/Greek/Cyrillic accents (U+0300-U+036F) go: kana voicing marks (U+3099)
    # tell different names apart (やまだ is not やまた).
    stripped = "".join(ch for ch in decomposed if not "\u0300" <= ch <= "\u036f")
    folded = " ".join(unicodedata.normalize("NFC", stripped).casefold().split())
    groups = ["^".join(part.strip() for part in group.split("^")).rstrip("^") for group in folded.split("=")]
    return "=".join(groups).rstrip("=")
