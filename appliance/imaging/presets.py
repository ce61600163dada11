"""Window presets a viewer offers for an image, by modality.

CT has absolute units (HU): its presets are the usual tissue windows.  Radiographs (dental IO
and PX, and the DX and CR of a veterinary practice) have none: a value means nothing outside
its detector, so their presets are derived from the image itself.  The base is the file's own
first window (what the modality chose for this exposure), else the whole stored range (Bits
Stored, through the rescale); each preset moves the centre towards the dense end (bone,
enamel) or the lucent end (soft tissue, air) by a share of the base width, and widens or
narrows it.  Which end is dense follows the photometric interpretation: high values are bright
(dense) in MONOCHROME2, dark in MONOCHROME1.  They are starting points to refine by dragging,
not calibrated tissue values.
"""

from __future__ import annotations

from typing import Any

# (name, centre, width) in HU.
CT: list[tuple[str, float, float]] = [
    ("Brain", 40, 80),
    ("Subdural", 75, 215),
    ("Soft tissue", 40, 400),  # abdomen
    ("Mediastinum", 50, 350),
    ("Lung", -600, 1500),
    ("Bone", 480, 2500),
]
# (name, centre shift towards the dense end, width), both as shares of the base width.
DENTAL = [
    ("Enamel / dentine", 0.25, 0.5),  # the dense half of the range
    ("Bone (alveolar)", 0.125, 0.75),
    ("Soft tissue", -0.25, 0.5),  # the lucent half
]
VETERINARY = [
    ("Thorax", -0.125, 1.25),  # wide: air-filled lung against heart and vessels
    ("Abdomen", 0.0, 0.6),  # narrow: soft tissue against soft tissue
    ("Bone / orthopaedics", 0.17, 0.75),
]
DENTAL_MODALITIES = ("IO", "PX")
RADIOGRAPHY = ("DX", "CR")


def presets(modality: str, image: dict[str, Any], species: str = "") -> list[tuple[str, float, float]]:
    """(name, centre, width) for a grayscale image of ``modality`` (its describe() dictionary);
    veterinary presets for radiographs of a patient with a species."""
    if modality == "CT":
        return list(CT)
    if modality in DENTAL_MODALITIES:
        shares = DENTAL
    elif modality in RADIOGRAPHY and species:
        shares = VETERINARY
    else:
        return []
    base = _base(image)
    if base is None:
        return []
    center, width = base
    dense = -1 if image.get("photometric") == "MONOCHROME1" else 1
    return [(name, _round(center + dense * shift * width), max(1, _round(share * width)))
            for name, shift, share in shares]  # fmt: skip


def _base(image: dict[str, Any]) -> tuple[float, float] | None:
    """The file's first window, else the whole stored range (centre, width)."""
    for window in image.get("windows") or []:
        if window.get("center") is not None and window.get("width"):
            return float(window["center"]), float(window["width"])
    low_high = image.get("value_range")
    if not low_high or low_high[1] <= low_high[0]:
        return None
    low, high = low_high
    return (low + high) / 2, high - low + 1


def _round(value: float) -> float:
    """Whole numbers where the values are large (shown in the list as centre/width)."""
    return round(value) if abs(value) >= 100 else round(value, 1)
