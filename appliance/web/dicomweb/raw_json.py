"""One attribute's DICOM JSON (PS3.18 F.2) straight from the bytes pydicom read, without making
it a DataElement: pydicom's conversion (value classes, MultiValue, PersonName, validation) was
three quarters of a WADO-RS metadata answer's time.

Only the regular cases are encoded here, those where the answer is certainly what pydicom's
``convert_raw_data_element`` + ``DataElement.to_json_dict`` give: explicit VRs (or unambiguous
public dictionary VRs), values in memory, strings whose values carry no leading or trailing
blanks, numbers in the plain forms.  Everything else (UN, SQ, ambiguous or private implicit VRs,
LUT descriptors, escape sequences, odd lengths, unusual numbers) returns None and goes pydicom's
way; tests/test_dicomweb_raw_json.py holds the two ways equal.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Sequence
from typing import Any

from pydicom import config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.hooks import _LUT_DESCRIPTOR_TAGS

_BINARY = {"OB", "OD", "OF", "OL", "OV", "OW"}  # UN is pydicom's to reinterpret
_NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "UV": "Q", "SV": "q", "FL": "f", "FD": "d"}
_SIZES = {vr: struct.calcsize("=" + code) for vr, code in _NUMBERS.items()}
_TEXT = {"SH", "LO", "UC", "PN", "ST", "LT", "UT"}  # decoded in the dataset's character set
_SINGLE = {"ST", "LT", "UT"}  # one value, backslashes and leading blanks kept
_MULTI = {"AE", "AS", "CS", "DA", "DT", "TM", "UI", "SH", "LO", "UC", "PN", "IS", "DS"}
_IS = re.compile(r"[+-]?[0-9]+")
_DS = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_ESC = b"\x1b"
_LUT_DESCRIPTORS = frozenset(int(tag) for tag in _LUT_DESCRIPTOR_TAGS)  # whose first value pydicom adjusts


def usable() -> bool:
    """False when pydicom is configured to make other values than its defaults."""
    return not (config.datetime_conversion or config.use_DS_numpy or config.use_IS_numpy or config.use_DS_decimal
                or config.data_element_callback)  # fmt: skip


def attribute(raw: RawDataElement, encodings: Sequence[str]) -> dict[str, Any] | None:
    """``raw`` as DICOM JSON, or None when pydicom's own way must decide."""
    value = raw.value
    vr = raw.VR
    if vr is None:  # implicit VR: the dictionary's, when it is certain
        if raw.tag >> 16 & 1:
            return None
        try:
            vr = dictionary_VR(raw.tag)
        except KeyError:
            return None
    if value is None:
        return None
    if vr in _NUMBERS:
        return None if raw.tag in _LUT_DESCRIPTORS else _numbers(vr, value, raw.is_little_endian)
    if vr in _BINARY:
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode()} if value else {"vr": vr}
    if vr == "AT":
        return _tags(value, raw.is_little_endian)
    if vr in _SINGLE or vr in _MULTI or vr == "UR":
        return _strings(vr, value, encodings)
    return None


def _numbers(vr: str, value: bytes, little: bool) -> dict[str, Any] | None:
    count, rest = divmod(len(value), _SIZES[vr])
    if rest:
        return None
    if not count:
        return {"vr": vr}
    return {"vr": vr, "Value": list(struct.unpack(f"{'<' if little else '>'}{count}{_NUMBERS[vr]}", value))}


def _tags(value: bytes, little: bool) -> dict[str, Any] | None:
    count, rest = divmod(len(value), 4)
    if rest:
        return None
    if not count:
        return {"vr": "AT"}
    halves = struct.unpack(f"{'<' if little else '>'}{count * 2}H", value)
    return {"vr": "AT", "Value": [f"{halves[i] << 16 | halves[i + 1]:08X}" for i in range(0, len(halves), 2)]}


def _strings(vr: str, value: bytes, encodings: Sequence[str]) -> dict[str, Any] | None:
    if vr in _TEXT and not value.isascii():
        # pydicom decodes a value without escape sequences with the first encoding alone; a PN
        # is decoded again group by group, the same only when there is one encoding.
        if _ESC in value or (vr == "PN" and len(encodings) > 1):
            return None
        try:
            text = value.decode(encodings[0])
        except (UnicodeError, LookupError):
            return None
    elif value.isascii() and _ESC not in value:
        text = value.decode("ascii")
    else:
        return None
    if vr in _SINGLE:
        text = text.rstrip("\0 ")
        return {"vr": vr, "Value": [text]} if text else {"vr": vr}
    if vr == "UR":
        text = text.rstrip()
        return {"vr": vr, "Value": [text]} if text else {"vr": vr}
    if "\0" in text:
        if vr != "UI":
            return None
        text = text.rstrip("\0 ")
    text = text.rstrip(" ")
    if not text:
        return {"vr": vr}
    values = text.split("\\")
    for one in values:
        if not one or one != one.strip():  # empty values and blanks inside: pydicom's details
            return None
    if vr == "PN":
        names: list[Any] = []
        for one in values:
            groups = one.split("=")
            while groups and not groups[-1]:
                groups.pop()
            if not groups or len(groups) > 3:
                return None
            names.append(dict(zip(_PN_GROUPS, groups, strict=False)))
        return {"vr": vr, "Value": names}
    if vr == "IS":
        if not all(_IS.fullmatch(one) for one in values):
            return None
        return {"vr": vr, "Value": [int(one) for one in values]}
    if vr == "DS":
        if not all(_DS.fullmatch(one) for one in values):
            return None
        return {"vr": vr, "Value": [float(one) for one in values]}
    return {"vr": vr, "Value": values}
