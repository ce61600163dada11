"""A structured report's content tree, read for people (PS3.3 C.17.3, C.18).

Basic, Enhanced and Comprehensive SR, key object selections, dose reports: every SR storage
class is one tree of content items.  Each item keeps its relationship to its parent, its
concept name and its value as text; dates, times and names stay as DICOM has them (the page
formats them, the JSON keeps them).  A tree larger than ``MAX_ITEMS`` or deeper than
``MAX_DEPTH`` is cut there and says so.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from appliance.archive import kinds

MAX_FILE_BYTES = 32 << 20
MAX_ITEMS = 20_000
MAX_DEPTH = 64
RELATIONSHIPS = {
    "CONTAINS": "",
    "HAS OBS CONTEXT": "Observation context",
    "HAS ACQ CONTEXT": "Acquisition context",
    "HAS CONCEPT MOD": "Concept modifier",
    "HAS PROPERTIES": "Properties",
    "INFERRED FROM": "Inferred from",
    "SELECTED FROM": "Selected from",
}


class ReportError(ValueError):
    """Not a structured report that can be shown (not SR, unreadable, too large)."""


@dataclass
class Item:
    position: str  # "1.2.3", as Referenced Content Item Identifier counts
    relationship: str  # how it relates to its parent, in words ("" for contains)
    value_type: str  # CONTAINER, TEXT, CODE, NUM, DATE, TIME, DATETIME, PNAME, UIDREF, IMAGE, ...
    name: str  # the concept name's meaning
    value: str = ""
    unit: str = ""  # NUM: the unit's code value (UCUM), "" for no unit
    code: str = ""  # CODE: the code value and its scheme, as dsr2html shows them ("2222, 99_OFFIS_DCMTK")
    observed: str = ""  # Observation DateTime, as stored
    reference: str = ""  # a by-reference item: the position of the item it points to
    children: list[Item] = field(default_factory=list)


@dataclass
class Observer:
    name: str  # PN as stored
    organization: str
    when: str  # DT as stored


@dataclass
class Report:
    title: str
    document_type: str  # the SOP class, e.g. "Comprehensive SR"
    completion: str
    completion_description: str
    verification: str
    verifying_observers: list[Observer]
    preliminary: str
    content_date: str
    content_time: str
    root: Item
    truncated: bool


def read(path: Path) -> Report:
    if os.stat(path).st_size > MAX_FILE_BYTES:
        raise ReportError(f"the report is larger than {MAX_FILE_BYTES >> 20} MB: download it instead")
    counter = _Counter()
    try:  # pydicom parses sequences as they are first read: a broken one fails in _item
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if str(ds.get("ValueType", "")).upper() != "CONTAINER":
            raise ReportError("not a structured report (its root is not a CONTAINER)")
        root = _item(ds, "1", 0, counter)
        observers = [
            Observer(
                str(o.get("VerifyingObserverName", "")),
                str(o.get("VerifyingOrganization", "")),
                str(o.get("VerificationDateTime", "")),
            )  # fmt: skip
            for o in ds.get("VerifyingObserverSequence") or []
        ]
    except ReportError:
        raise
    except (InvalidDicomError, ValueError, TypeError, struct.error, EOFError, KeyError) as exc:
        raise ReportError(f"not a readable structured report: {exc}") from None
    return Report(
        title=root.name,
        document_type=kinds.sop_class_name(str(ds.get("SOPClassUID", ""))),
        completion=str(ds.get("CompletionFlag", "")),
        completion_description=str(ds.get("CompletionFlagDescription", "")),
        verification=str(ds.get("VerificationFlag", "")),
        verifying_observers=observers,
        preliminary=str(ds.get("PreliminaryFlag", "")),
        content_date=str(ds.get("ContentDate", "")),
        content_time=str(ds.get("ContentTime", "")),
        root=root,
        truncated=counter.truncated,
    )


class _Counter:
    def __init__(self) -> None:
        self.items = 0
        self.truncated = False

    def take(self, depth: int) -> bool:
        if self.items >= MAX_ITEMS or depth > MAX_DEPTH:
            self.truncated = True
            return False
        self.items += 1
        return True


def _item(ds: Dataset, position: str, depth: int, counter: _Counter) -> Item:
    relationship = str(ds.get("RelationshipType", ""))
    item = Item(
        position,
        RELATIONSHIPS.get(relationship, relationship.capitalize()),
        str(ds.get("ValueType", "")),
        _meaning(ds.get("ConceptNameCodeSequence")),
        observed=str(ds.get("ObservationDateTime", "")),
    )
    if "ReferencedContentItemIdentifier" in ds:
        item.value_type = "REFERENCE"
        item.reference = ".".join(str(n) for n in _list(ds.ReferencedContentItemIdentifier))
    else:
        item.value, item.unit = _value(ds, item.value_type)
        if item.value_type == "CODE":
            item.code = _code(ds.get("ConceptCodeSequence"))
    for n, child in enumerate(ds.get("ContentSequence") or [], start=1):
        if not counter.take(depth + 1):
            break
        item.children.append(_item(child, f"{position}.{n}", depth + 1, counter))
    return item


def _value(ds: Dataset, value_type: str) -> tuple[str, str]:
    """The item's value as text, and a NUM's unit."""
    simple = {"TEXT": "TextValue", "DATE": "Date", "TIME": "Time", "DATETIME": "DateTime", "PNAME": "PersonName",
              "UIDREF": "UID"}  # fmt: skip
    if value_type in simple:
        text = str(ds.get(simple[value_type], ""))
        return text.replace("\r\n", "\n").replace("\r", "\n").rstrip() if value_type == "TEXT" else text, ""
    if value_type == "CODE":
        return _meaning(ds.get("ConceptCodeSequence")), ""
    if value_type == "NUM":
        measured = _first(ds.get("MeasuredValueSequence"))
        if measured is None:  # no value: the qualifier says why ("Not a number", ...)
            return _meaning(ds.get("NumericValueQualifierCodeSequence")), ""
        unit = _first(measured.get("MeasurementUnitsCodeSequence"))
        unit_value = str(unit.get("CodeValue", "")) if unit is not None else ""
        return str(measured.get("NumericValue", "")), "" if unit_value == "1" else unit_value  # UCUM "1": no unit
    if value_type in ("COMPOSITE", "IMAGE", "WAVEFORM"):
        return _reference(_first(ds.get("ReferencedSOPSequence"))), ""
    if value_type in ("SCOORD", "SCOORD3D"):
        return _graphic(ds), ""
    if value_type == "TCOORD":
        return str(ds.get("TemporalRangeType", "")).capitalize(), ""
    return "", ""


def _reference(ref: Dataset | None) -> str:
    if ref is None:
        return ""
    text = kinds.sop_class_name(str(ref.get("ReferencedSOPClassUID", "")))
    frames = _list(ref.get("ReferencedFrameNumber"))
    if frames:
        text += f", frame{'s' if len(frames) > 1 else ''} {', '.join(str(f) for f in frames)}"
    if _first(ref.get("ReferencedSOPSequence")) is not None:
        text += ", with presentation state"
    return text


def _graphic(ds: Dataset) -> str:
    """A spatial coordinate: its shape and points, e.g. "Circle (10, 20) (15, 20)"."""
    shape = str(ds.get("GraphicType", "")).capitalize()
    data = [float(v) for v in _list(ds.get("GraphicData"))]
    step = 3 if ds.get("ValueType") == "SCOORD3D" else 2
    points = [data[i:i + step] for i in range(0, min(len(data), 64 * step), step)]  # fmt: skip
    text = " ".join("(" + ", ".join(f"{v:g}" for v in point) + ")" for point in points)
    return f"{shape} {text}" + (" …" if len(data) > 64 * step else "")


def _meaning(sequence: Any) -> str:
    code = _first(sequence)
    return str(code.get("CodeMeaning", "")) if code is not None else ""


def _code(sequence: Any) -> str:
    code = _first(sequence)
    if code is None:
        return ""
    value = code.get("CodeValue") or code.get("LongCodeValue") or code.get("URNCodeValue")
    return ", ".join(str(p) for p in (value, code.get("CodingSchemeDesignator")) if p)


def _first(sequence: Any) -> Dataset | None:
    return sequence[0] if sequence else None


def _list(value: Any) -> list[Any]:
    """A multi-valued attribute as a list (pydicom gives one value alone, not in a list)."""
    if isinstance(value, (MultiValue, list, tuple)):
        return list(value)
    return [] if value is None or value == "" else [value]
