"""Colour frames to 8-bit RGB: palette lookup and scaling of deeper samples."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from appliance.imaging.palette import read_palette
from appliance.imaging.source import ImagingError


def to_rgb8(frame: np.ndarray, photometric: str, ds: Dataset) -> np.ndarray:
    """A decoded colour frame (RGB after the decoder's YBR conversion, or PALETTE COLOR
    indices) as uint8 RGB."""
    if photometric == "PALETTE COLOR":
        return read_palette(ds).apply(frame)
    if photometric not in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"):
        raise ImagingError(f"unsupported photometric interpretation {photometric!r}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ImagingError(f"{photometric} frame with shape {frame.shape}")
    return _scale(frame, int(ds.get("BitsStored") or 8))


def _scale(rgb: np.ndarray, bits: int) -> np.ndarray:
    if rgb.dtype == np.uint8 and bits <= 8:
        return rgb
    top = (1 << bits) - 1
    return np.clip(np.rint(rgb.astype(np.float32) * (255.0 / top)), 0, 255).astype(np.uint8)
