"""Colour frames to 8-bit RGB: palette lookup and scaling of deeper samples."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut

from appliance.imaging.source import ImagingError


def to_rgb8(frame: np.ndarray, photometric: str, ds: Dataset) -> np.ndarray:
    """A decoded colour frame (RGB after the decoder's YBR conversion, or PALETTE COLOR
    indices) as uint8 RGB."""
    if photometric == "PALETTE COLOR":
        try:
            rgb = apply_color_lut(frame, ds)
        except (ValueError, AttributeError, KeyError, IndexError) as exc:
            raise ImagingError(f"bad palette: {exc}") from exc
        depth = _palette_depth(ds)
        return _scale(rgb, depth)
    if photometric not in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"):
        raise ImagingError(f"unsupported photometric interpretation {photometric!r}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ImagingError(f"{photometric} frame with shape {frame.shape}")
    return _scale(frame, int(ds.get("BitsStored") or 8))


def _palette_depth(ds: Dataset) -> int:
    descriptor = ds.get("RedPaletteColorLookupTableDescriptor")
    return int(descriptor[2]) if descriptor is not None and len(descriptor) == 3 else 8


def _scale(rgb: np.ndarray, bits: int) -> np.ndarray:
    if rgb.dtype == np.uint8 and bits <= 8:
        return rgb
    top = (1 << bits) - 1
    return np.clip(np.rint(rgb.astype(np.float32) * (255.0 / top)), 0, 255).astype(np.uint8)
