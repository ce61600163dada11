"""What a viewer needs to know about an image, from its header alone (no pixels decoded)."""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset

from appliance.imaging import grayscale
from appliance.imaging.overlays import Plane

# Sequence of Ultrasound Regions, Physical Units X/Y Direction (PS3.3 C.8.5.5.1.15): 3 is cm.
_US_UNITS = {0: "none", 1: "percent", 2: "dB", 3: "cm", 4: "seconds", 5: "hertz", 6: "dB/seconds",
             7: "cm/sec", 8: "cm2", 9: "cm2/sec", 0xA: "cm3", 0xB: "cm3/sec", 0xC: "degrees"}  # fmt: skip


def describe(ds: Dataset, frames: int, overlays: tuple[Plane, ...]) -> dict[str, Any]:
    """Size, presentation, calibration and overlay planes of one instance."""
    windows = grayscale.file_windows(grayscale.frame_attributes(ds, 0))
    return {
        "rows": int(ds.get("Rows") or 0),
        "columns": int(ds.get("Columns") or 0),
        "frames": frames,
        "photometric": str(ds.get("PhotometricInterpretation", "")).strip(),
        "grayscale": str(ds.get("PhotometricInterpretation", "")).strip() in ("MONOCHROME1", "MONOCHROME2"),
        "windows": [w.as_dict() for w in windows],
        "value_range": value_range(ds),
        "has_voi_lut": bool(ds.get("VOILUTSequence")),
        "inverted": grayscale.inverted_by_file(ds),
        "pixel_spacing": pixel_spacing(ds),
        "imager_pixel_spacing": _pair(ds.get("ImagerPixelSpacing")),
        "estimated_magnification": _positive(ds.get("EstimatedRadiographicMagnificationFactor")),
        "ultrasound_regions": ultrasound_regions(ds),
        "frame_time_ms": _float(ds.get("FrameTime")),
        "recommended_frame_rate": _float(ds.get("RecommendedDisplayFrameRate")),
        "cine_rate": _float(ds.get("CineRate")),
        "instance_number": _int(ds.get("InstanceNumber")),
        "image_type": [str(v) for v in ds.get("ImageType") or []],
        "laterality": str(ds.get("ImageLaterality", "") or ds.get("Laterality", "")),
        "view_position": str(ds.get("ViewPosition", "")),
        "slice_location": _float(ds.get("SliceLocation")),
        "slice_thickness": _float(ds.get("SliceThickness")),
        "acquisition_date": str(ds.get("AcquisitionDate", "") or ds.get("ContentDate", "")),
        "overlays": [plane.as_dict() for plane in overlays],
    }


def value_range(ds: Dataset) -> list[float] | None:
    """The lowest and highest value Bits Stored allows, through the rescale (modality units)."""
    bits = _int(ds.get("BitsStored"))
    if not bits or not 1 <= bits <= 32:
        return None
    signed = _int(ds.get("PixelRepresentation")) == 1
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    slope, intercept = _float(ds.get("RescaleSlope")) or 1.0, _float(ds.get("RescaleIntercept")) or 0.0
    ends = sorted((low * slope + intercept, high * slope + intercept))
    return ends


def pixel_spacing(ds: Dataset) -> list[float] | None:
    """Pixel Spacing [row, column] in mm: the image's own, else (enhanced multi-frame images) the
    Pixel Measures functional group shared by all frames, else the first frame's."""
    own = _pair(ds.get("PixelSpacing"))
    if own:
        return own
    for groups in (ds.get("SharedFunctionalGroupsSequence"), ds.get("PerFrameFunctionalGroupsSequence")):
        for measures in (groups or [])[:1]:
            for item in measures.get("PixelMeasuresSequence") or []:
                found = _pair(item.get("PixelSpacing"))
                if found:
                    return found
    return None


def ultrasound_regions(ds: Dataset) -> list[dict[str, Any]]:
    """Calibrated regions of an ultrasound image, with mm per pixel where the unit is cm."""
    regions = []
    for item in ds.get("SequenceOfUltrasoundRegions") or []:
        try:
            unit_x = _US_UNITS.get(int(item.PhysicalUnitsXDirection), "unknown")
            unit_y = _US_UNITS.get(int(item.PhysicalUnitsYDirection), "unknown")
            delta_x, delta_y = abs(float(item.PhysicalDeltaX)), abs(float(item.PhysicalDeltaY))
            box = [int(item.RegionLocationMinX0), int(item.RegionLocationMinY0),
                   int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)]  # fmt: skip
        except (AttributeError, TypeError, ValueError):
            continue
        region: dict[str, Any] = {
            "box": box,
            "unit_x": unit_x,
            "unit_y": unit_y,
            "delta_x": delta_x,
            "delta_y": delta_y,
        }
        if unit_x == unit_y == "cm":
            region["mm_per_pixel"] = [delta_y * 10.0, delta_x * 10.0]  # [row, column] like Pixel Spacing
        regions.append(region)
    return regions


def _pair(value: Any) -> list[float] | None:
    try:
        pair = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return pair if len(pair) == 2 and all(v > 0 for v in pair) else None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _positive(value: Any) -> float | None:
    number = _float(value)
    return number if number is not None and number > 0 else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
