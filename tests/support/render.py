"""Our rendering and DCMTK's (dcmj2pnm, dcml2pnm) of the same file, frame and window, as
arrays to compare."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut

from appliance import imaging
from appliance.imaging import Window
from support.tools import dcmtk


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def ours(path: Path, frame: int = 1, **kwargs) -> np.ndarray:
    return png(imaging.render_frame(path, frame, fmt="png", **kwargs).data)


def dcmtk_render(
    path: Path, frame: int, options: list[str], tmp: Path, tool: str = "dcmj2pnm", overlays: bool = False
) -> np.ndarray:
    """DCMTK's picture of ``frame``; overlays as dcmj2pnm draws them by default, or none."""
    out = tmp / "dcmtk.png"
    shown = [] if overlays else ["-O"]
    command = [dcmtk(tool), "+on", *shown, "+F", str(frame), *options, str(path), str(out)]
    run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return np.asarray(Image.open(out))


def voi_arguments(path: Path) -> tuple[list[str], Window | None]:
    """The same VOI for both renderers: the file's first window or VOI LUT, else a window
    computed here from the pixels (the default-window choice is tested on its own)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    if not str(ds.get("PhotometricInterpretation", "")).startswith("MONOCHROME"):
        return [], None
    if "WindowWidth" in ds:
        return ["+Wi", "1"], None
    if ds.get("VOILUTSequence"):
        return ["+Wl", "1"], None
    full = pydicom.dcmread(path)
    first = full.pixel_array[0] if int(full.get("NumberOfFrames") or 1) > 1 else full.pixel_array
    values = apply_modality_lut(first.astype(np.float64), ds)
    lo, hi = np.percentile(values, [1, 99])
    window = Window(float(lo + hi) / 2, max(float(hi - lo), 1.0))
    return ["+Ww", str(window.center), str(window.width)], window


def assert_close(a: np.ndarray, b: np.ndarray, tolerance: int) -> None:
    assert a.shape == b.shape
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
    assert diff.max() <= tolerance, f"max difference {diff.max()}, mean {diff.mean():.3f}"
