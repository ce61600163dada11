"""Where each image of a series lies in the patient: what a viewer needs to link the scrolling
of two series of the same Frame of Reference.  Only these attributes are read from each header
(the pixel data is never reached): the three of a classic image, and the functional groups of
an enhanced multi-frame one (CT, MR, PET...), which keeps a position per frame."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

_TAGS = ["FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient",
         "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"]  # fmt: skip


def _numbers(value: Any, count: int) -> list[float] | None:
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def _group(groups: Any, sequence: str, keyword: str) -> Any:
    """``keyword`` in the first item of ``sequence`` in a functional groups item (or None)."""
    items = groups.get(sequence) if groups is not None else None
    return items[0].get(keyword) if items else None


def _frames(ds: Any) -> list[dict[str, list[float] | None]] | None:
    """Each frame's position and orientation (Plane Position and Plane Orientation functional
    groups: the orientation per frame, else shared), or None when the frames have no positions."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    common = _group(shared, "PlaneOrientationSequence", "ImageOrientationPatient")
    frames = []
    for groups in per_frame:
        orientation = _group(groups, "PlaneOrientationSequence", "ImageOrientationPatient") or common
        position = _group(groups, "PlanePositionSequence", "ImagePositionPatient")
        if position is None:
            position = _group(shared, "PlanePositionSequence", "ImagePositionPatient")
        frames.append({"position": _numbers(position, 3), "orientation": _numbers(orientation, 6)})
    return frames if any(f["position"] for f in frames) else None


def series_geometry(paths: Iterable[Path]) -> dict[str, Any]:
    """The Frame of Reference UID (the first found) and, per file, the position and orientation
    of the image (None where missing or malformed) and, for a multi-frame image that keeps them
    per frame, ``frames``: each frame's."""
    frame_of_reference = ""
    positions: list[dict[str, Any]] = []
    for path in paths:
        try:
            ds = dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
        except (InvalidDicomError, OSError):
            positions.append({"position": None, "orientation": None})
            continue
        frame_of_reference = frame_of_reference or str(ds.get("FrameOfReferenceUID", "") or "")
        place: dict[str, Any] = {
            "position": _numbers(ds.get("ImagePositionPatient"), 3),
            "orientation": _numbers(ds.get("ImageOrientationPatient"), 6),
        }
        frames = _frames(ds)
        if frames:
            place["frames"] = frames
        positions.append(place)
    return {"frame_of_reference": frame_of_reference, "instances": positions}
