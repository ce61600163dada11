"""The DICOM JSON Model (PS3.18 F.2): a dataset, or one attribute's decoded value as the index
keeps it, as the JSON object DICOMweb answers with (``{"0020000D": {"vr": "UI", "Value": [...]}}``).

For a dataset, pydicom's ``DataElement.to_json_dict`` encodes each value correctly (PN as
Alphabetic groups, IS and DS as numbers, AT as hex strings), slowly: raw_json encodes the plain
elements from their bytes first, the same way, and leaves it the rest.  What it lacks is where
an element is, which a BulkDataURI must say.  So the walk is ours: binary values longer than ``INLINE_MAX``
become BulkDataURIs named by their tag path (``7FE00010``, or ``00540016/1/00181072`` inside a
sequence: item numbers from 1), without reading them when the file left them on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pydicom
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement

from appliance.web.dicomweb import raw_json

LOG = logging.getLogger("lightbox.web.dicomweb")
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
INLINE_MAX = 1024  # bytes: a longer binary value goes by BulkDataURI (when there is one)
_NUMBERS = {"IS", "DS", "US", "UL", "SS", "SL", "SV", "UV", "FL", "FD"}
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_PLAIN_NOT = _NUMBERS | {"PN", "SQ"}  # VRs whose one string value is not its JSON value as it stands


def tag_key(tag: int) -> str:
    return f"{tag:08X}"


def _number(vr: str, text: str) -> int | float:
    if vr == "DS":
        number = float(text)
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    return int(text)


def person_name(text: str) -> dict[str, str]:
    """F.2.2: a PN value's component groups (``Alphabetic=Ideographic=Phonetic``) by name."""
    return {name: group for name, group in zip(_PN_GROUPS, text.split("="), strict=False) if group}


def attribute(vr: str, value: Any) -> dict[str, Any]:
    """One attribute from a decoded value as the index keeps it: a string (backslash between
    values), an int, or for SQ a list of items (keyword -> string).  Empty: no ``Value``."""
    if isinstance(value, str) and "\\" not in value and vr not in _PLAIN_NOT:  # most QIDO values: one string
        text = value.strip()
        return {"vr": vr, "Value": [text]} if text else {"vr": vr}
    if vr == "SQ":
        items = [{tag_key(pydicom.datadict.tag_for_keyword(kw) or 0): attribute(pydicom.datadict.dictionary_VR(kw), v)
                  for kw, v in item.items()} for item in value or []]  # fmt: skip
        return {"vr": vr, "Value": items} if items else {"vr": vr}
    if isinstance(value, (int, float)):
        return {"vr": vr, "Value": [value]}
    values = [v.strip() if vr != "PN" else v for v in str(value or "").split("\\")] if value not in (None, "") else []
    if not any(values):
        return {"vr": vr}
    encoded: list[Any]
    if vr == "PN":
        encoded = [person_name(v) if v else None for v in values]
    elif vr in _NUMBERS:
        encoded = [_number(vr, v) if v else None for v in values]
    else:
        encoded = [v if v else None for v in values]
    return {"vr": vr, "Value": encoded}


def to_json(ds: pydicom.Dataset, bulk_uri: Callable[[str], str] | None = None, prefix: str = "") -> dict:
    """``ds`` as DICOM JSON; ``bulk_uri(tag_path)`` gives the URI of a large binary value, and
    without it every value is inline (InlineBinary)."""
    out: dict[str, Any] = {}
    charset = ds._character_set
    encodings = ([charset] if isinstance(charset, str) else list(charset)) or [default_encoding]
    direct = raw_json.usable()
    for tag in sorted(ds.keys()):
        if tag >> 16 == 0x0002 or not tag & 0xFFFF:
            continue  # group lengths and the meta header are not attributes of the instance
        key = tag_key(tag)
        element = ds.get_item(tag, keep_deferred=True)
        vr = _vr(element, tag)
        if bulk_uri is not None and vr in BINARY_VRS and _size(element) > INLINE_MAX:
            out[key] = {"vr": vr, "BulkDataURI": bulk_uri(prefix + key)}
            continue
        if direct and isinstance(element, RawDataElement):
            encoded = raw_json.attribute(element, encodings)
            if encoded is not None:
                out[key] = encoded
                continue
        try:
            full = ds[tag]
            if full.VR == "SQ":
                items = [to_json(item, bulk_uri, f"{prefix}{key}/{n}/") for n, item in enumerate(full.value, 1)]
                out[key] = {"vr": "SQ", **({"Value": items} if items else {})}
            else:
                encoded = full.to_json_dict(None, bulk_data_threshold=1 << 62)
                if encoded.get("Value") == []:  # pydicom's empty value; F.2.5 says leave Value out
                    del encoded["Value"]
                out[key] = encoded
        except Exception as exc:  # a value pydicom cannot encode: the attribute without it (logged)
            LOG.warning("dicom_json_value_dropped tag=%s reason=%s", tag_key(tag), exc.__class__.__name__)
            out[key] = {"vr": vr}
    return out


def _size(element: DataElement | RawDataElement) -> int:
    if isinstance(element, RawDataElement):
        return element.length  # read or not; 0xFFFFFFFF (undefined length) counts as large
    return len(element.value) if isinstance(element.value, (bytes, bytearray)) else 0


def _vr(element: DataElement | RawDataElement, tag: int) -> str:
    vr = element.VR
    if vr and len(vr) == 2:  # most: explicit
        return str(vr)
    if not vr:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
    if " or " in vr:
        vr = "OW" if "OW" in vr else vr.split(" or ")[0]
    return str(vr)
