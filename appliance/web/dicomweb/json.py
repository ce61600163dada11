"""The DICOM JSON Model (PS3.18 F.2): a dataset, or one attribute's decoded value, as the
JSON object DICOMweb answers with (``{"0020000D": {"vr": "UI", "Value": [...]}}``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydicom
from pydicom.dataelem import DataElement

INLINE_MAX = 1024  # binary values up to this many bytes go inline (base64) when no bulk URI is made
_NUMBERS = {"IS", "DS", "US", "UL", "SS", "SL", "SV", "UV", "FL", "FD"}
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


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


def to_json(ds: pydicom.Dataset, bulk_uri: Callable[[str], str] | None = None) -> dict:
    """A whole dataset (PS3.18 F.2), with binary values longer than ``INLINE_MAX`` bytes as a
    ``BulkDataURI`` (``bulk_uri`` is given the tag as 8 hex digits) when ``bulk_uri`` is given,
    else ``InlineBinary``.  pydicom's encoder does the work; what it gets wrong is mended here."""

    def handler(element: DataElement) -> str:
        return bulk_uri(tag_key(element.tag)) if bulk_uri is not None else ""

    threshold = INLINE_MAX if bulk_uri is not None else 2**62
    answer = ds.to_json_dict(bulk_data_threshold=threshold, bulk_data_element_handler=handler)
    _mend(answer)
    return answer


def _mend(obj: dict[str, Any]) -> None:
    """pydicom writes ``"Value": []`` for some empty elements; F.2.5 says leave ``Value`` out."""
    for element in obj.values():
        value = element.get("Value")
        if value == []:
            del element["Value"]
        elif element.get("vr") == "SQ" and value:
            for item in value:
                _mend(item)
