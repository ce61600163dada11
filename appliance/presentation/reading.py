"""Any presentation state file, ours or another system's, as the JSON ``description`` takes.

Unreadable or foreign parts are left out rather than failing the whole: a state whose VOI is a
LUT (not a window) comes back without it, a shutter or overlay activation is not described.
Lists are cut at the description's bounds (``truncated`` says so), and files over
``MAX_FILE_BYTES`` are refused.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from appliance.presentation import description as limits
from appliance.presentation.making import COLOR

MAX_FILE_BYTES = 16 << 20
SUMMARY_TAGS = ["SOPClassUID", "SOPInstanceUID", "SpecificCharacterSet", "ContentLabel", "ContentDescription",
                "ContentCreatorName", "PresentationCreationDate", "PresentationCreationTime", "InstanceNumber",
                "ReferencedSeriesSequence"]  # fmt: skip


class PresentationError(ValueError):
    """Not a presentation state that can be read."""


def read(path: Path, summary: bool = False) -> Dataset:
    if os.stat(path).st_size > MAX_FILE_BYTES:
        raise PresentationError(f"the presentation state is larger than {MAX_FILE_BYTES >> 20} MB")
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=SUMMARY_TAGS if summary else None)
    except (InvalidDicomError, ValueError, TypeError, struct.error, EOFError, KeyError) as exc:
        raise PresentationError(f"not a readable presentation state: {exc}") from None


def references(ds: Dataset) -> set[str]:
    """The Series Instance UIDs the state refers to."""
    return {str(s.get("SeriesInstanceUID", "")) for s in ds.get("ReferencedSeriesSequence") or []}


def summary(ds: Dataset) -> dict[str, Any]:
    return {
        "sop_uid": str(ds.get("SOPInstanceUID", "")),
        "sop_class": str(ds.get("SOPClassUID", "")),
        "label": str(ds.get("ContentLabel", "")),
        "description": str(ds.get("ContentDescription", "")),
        "creator": str(ds.get("ContentCreatorName", "")),
        "creation_date": str(ds.get("PresentationCreationDate", "")),
        "creation_time": str(ds.get("PresentationCreationTime", "")),
    }


def describe(ds: Dataset) -> dict[str, Any]:
    """The state in the description's shape, with the read-only keys."""
    cut = _Cut()
    images = [
        {"series_uid": str(series.get("SeriesInstanceUID", "")), "sop_uid": str(image.get("ReferencedSOPInstanceUID", "")),
         "frames": [int(f) for f in _list(image.get("ReferencedFrameNumber"))][: limits.MAX_FRAMES]}
        for series in ds.get("ReferencedSeriesSequence") or []
        for image in series.get("ReferencedImageSequence") or []
    ]  # fmt: skip
    return {
        **summary(ds),
        "color": str(ds.get("SOPClassUID", "")) == COLOR,
        "study_uid": str(ds.get("StudyInstanceUID", "")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "instance_number": _int(ds.get("InstanceNumber")),
        "presentation_lut_shape": str(ds.get("PresentationLUTShape", "")),
        "images": cut.list(images, limits.MAX_IMAGES),
        "voi": cut.list(
            [_window(item) for item in ds.get("SoftcopyVOILUTSequence") or [] if "WindowCenter" in item],
            limits.MAX_ITEMS,
        ),  # fmt: skip
        "displayed_areas": cut.list(
            [_area(item) for item in ds.get("DisplayedAreaSelectionSequence") or []], limits.MAX_ITEMS
        ),  # fmt: skip
        "rotation": _int(ds.get("ImageRotation")) or 0,
        "flip": str(ds.get("ImageHorizontalFlip", "N")) == "Y",
        "layers": cut.list(
            [
                {
                    "name": str(item.get("GraphicLayer", "")),
                    "order": _int(item.get("GraphicLayerOrder")) or 0,
                    "description": str(item.get("GraphicLayerDescription", "")),
                }
                for item in ds.get("GraphicLayerSequence") or []
            ],
            limits.MAX_LAYERS,
        ),  # fmt: skip
        "annotations": [
            _annotation(item, cut)
            for item in cut.list(list(ds.get("GraphicAnnotationSequence") or []), limits.MAX_ANNOTATIONS)
        ],  # fmt: skip
        "truncated": cut.truncated,
    }


class _Cut:
    def __init__(self) -> None:
        self.truncated = False
        self.graphics = limits.MAX_GRAPHICS
        self.texts = limits.MAX_TEXTS

    def list(self, values: list[Any], most: int) -> list[Any]:
        if len(values) > most:
            self.truncated = True
        return values[:most]


def _window(item: Dataset) -> dict[str, Any]:
    return {"center": _first_number(item.get("WindowCenter")), "width": _first_number(item.get("WindowWidth")),
            "images": _uids(item)}  # fmt: skip


def _area(item: Dataset) -> dict[str, Any]:
    spacing = [float(v) for v in _list(item.get("PresentationPixelSpacing"))]
    ratio = [int(v) for v in _list(item.get("PresentationPixelAspectRatio"))]
    magnification = item.get("PresentationPixelMagnificationRatio")
    return {
        "top_left": [int(v) for v in _list(item.get("DisplayedAreaTopLeftHandCorner"))],
        "bottom_right": [int(v) for v in _list(item.get("DisplayedAreaBottomRightHandCorner"))],
        "size_mode": str(item.get("PresentationSizeMode", "")),
        "magnification": float(magnification) if magnification is not None else None,
        "pixel_spacing": spacing if len(spacing) == 2 else None,
        "aspect_ratio": ratio if len(ratio) == 2 else [1, 1],
        "images": _uids(item),
    }


def _annotation(item: Dataset, cut: _Cut) -> dict[str, Any]:
    graphics = []
    for g in item.get("GraphicObjectSequence") or []:
        if cut.graphics <= 0:
            cut.truncated = True
            break
        cut.graphics -= 1
        data = [float(v) for v in _list(g.get("GraphicData"))][: 2 * limits.MAX_POINTS]
        graphics.append({"type": str(g.get("GraphicType", "")), "units": str(g.get("GraphicAnnotationUnits", "")),
                         "points": [[data[i], data[i + 1]] for i in range(0, len(data) - 1, 2)],
                         "filled": str(g.get("GraphicFilled", "N")) == "Y"})  # fmt: skip
    texts = []
    for t in item.get("TextObjectSequence") or []:
        if cut.texts <= 0:
            cut.truncated = True
            break
        cut.texts -= 1
        anchor = [float(v) for v in _list(t.get("AnchorPoint"))]
        top_left = [float(v) for v in _list(t.get("BoundingBoxTopLeftHandCorner"))]
        bottom_right = [float(v) for v in _list(t.get("BoundingBoxBottomRightHandCorner"))]
        texts.append({
            "text": str(t.get("UnformattedTextValue", "")),
            "units": str(t.get("AnchorPointAnnotationUnits") or t.get("BoundingBoxAnnotationUnits") or "PIXEL"),
            "anchor": anchor if len(anchor) == 2 else None,
            "anchor_visible": str(t.get("AnchorPointVisibility", "N")) == "Y",
            "box": [top_left, bottom_right] if len(top_left) == 2 and len(bottom_right) == 2 else None,
        })  # fmt: skip
    # The frames of its images it is drawn on (none: every frame); one list for all its images,
    # as the description has it (another system's annotation naming different frames of two
    # images gets the frames of both on each).
    frames = sorted({int(f) for ref in item.get("ReferencedImageSequence") or []
                     for f in _list(ref.get("ReferencedFrameNumber"))})[: limits.MAX_FRAMES]  # fmt: skip
    return {"layer": str(item.get("GraphicLayer", "")), "images": _uids(item), "frames": frames,
            "graphics": graphics, "texts": texts}  # fmt: skip


def _uids(item: Dataset) -> list[str]:
    return [str(ref.get("ReferencedSOPInstanceUID", "")) for ref in item.get("ReferencedImageSequence") or []]


def _first_number(value: Any) -> float | None:
    values = _list(value)
    number = float(values[0]) if values else None
    return number if number is not None and math.isfinite(number) else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _list(value: Any) -> list[Any]:
    if isinstance(value, (MultiValue, list, tuple)):
        return list(value)
    return [] if value is None or value == "" else [value]
