"""Where each image of a series lies in the patient: what a viewer needs to link the scrolling
of two series of the same Frame of Reference.  Only the three attributes are read from each
header (the pixel data is never reached)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

_TAGS = ["FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient"]


def _numbers(value: Any, count: int) -> list[float] | None:
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def series_geometry(paths: Iterable[Path]) -> dict[str, Any]:
    """The Frame of Reference UID (the first found) and, per file, the position and orientation
    of its first frame (None where missing or malformed, as in a multi-frame image that keeps
    them per frame)."""
    frame_of_reference = ""
    positions: list[dict[str, list[float] | None]] = []
    for path in paths:
        try:
            ds = dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
        except (InvalidDicomError, OSError):
            positions.append({"position": None, "orientation": None})
            continue
        frame_of_reference = frame_of_reference or str(ds.get("FrameOfReferenceUID", "") or "")
        positions.append({
            "position": _numbers(ds.get("ImagePositionPatient"), 3),
            "orientation": _numbers(ds.get("ImageOrientationPatient"), 6),
        })  # fmt: skip
    return {"frame_of_reference": frame_of_reference, "instances": positions}
