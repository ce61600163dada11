"""The Native DICOM Model (PS3.19 A.1) that ``application/dicom+xml`` answers carry, made from
the DICOM JSON model (``json.py``) of the same dataset, so both answers say the same thing.

Each document is one dataset: ``<NativeDicomModel>`` with a ``<DicomAttribute tag vr keyword>``
per attribute, holding ``<Value number>``s, ``<PersonName number>``s with their component
groups split into FamilyName, GivenName ..., ``<Item number>``s of a sequence, a
``<BulkData uri>`` or an ``<InlineBinary>``.  ElementTree escapes markup; characters XML 1.0
cannot carry at all (C0 controls other than tab, LF, CR) become U+FFFD.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from pydicom.datadict import keyword_for_tag

DICOM_XML = "application/dicom+xml"
NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def to_xml(model: dict[str, Any]) -> bytes:
    """One dataset in DICOM JSON as a Native DICOM Model document (UTF-8, with its declaration)."""
    root = ET.Element("NativeDicomModel", {"xmlns": NAMESPACE, "xml:space": "preserve"})
    _dataset(root, model)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)  # 2.0 from JSON is the DS "2"
    return _NOT_XML.sub("\ufffd", str(value))


def _dataset(parent: ET.Element, model: dict[str, Any]) -> None:
    for tag in sorted(model):
        attribute = model[tag]
        number = int(tag, 16)
        fields = {"tag": tag, "vr": attribute.get("vr", "UN")}
        if (number >> 16) % 2:  # a private attribute names its creator (PS3.19 A.1.1)
            creator = model.get(f"{number >> 16:04X}00{(number >> 8) & 0xFF:02X}", {}).get("Value")
            if creator and (number & 0xFF00):
                fields["privateCreator"] = _text(creator[0])
        else:
            keyword = keyword_for_tag(number)
            if keyword:
                fields["keyword"] = keyword
        element = ET.SubElement(parent, "DicomAttribute", fields)
        if "BulkDataURI" in attribute:
            ET.SubElement(element, "BulkData", {"uri": _text(attribute["BulkDataURI"])})
        elif "InlineBinary" in attribute:
            ET.SubElement(element, "InlineBinary").text = attribute["InlineBinary"]
        for n, value in enumerate(attribute.get("Value", []), 1):
            if value is None:
                continue  # an empty value among others: its number is skipped
            if fields["vr"] == "SQ":
                _dataset(ET.SubElement(element, "Item", {"number": str(n)}), value)
            elif fields["vr"] == "PN":
                _person_name(ET.SubElement(element, "PersonName", {"number": str(n)}), value)
            else:
                ET.SubElement(element, "Value", {"number": str(n)}).text = _text(value)


def _person_name(parent: ET.Element, groups: dict[str, str]) -> None:
    for group in _GROUPS:
        if not groups.get(group):
            continue
        holder = ET.SubElement(parent, group)
        for name, component in zip(_COMPONENTS, groups[group].split("^"), strict=False):
            if component:
                ET.SubElement(holder, name).text = _text(component)
