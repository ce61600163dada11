"""The grayscale pipeline of PS3.4 N.2: Modality LUT, VOI LUT, Presentation LUT, to 8 bits.

For stored values of 8 or 16 bits the whole pipeline is evaluated once over every possible
stored value, giving a 256- or 65,536-entry table; a frame is then one table lookup.  Wider
or floating-point data is transformed directly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

LINEAR, LINEAR_EXACT, SIGMOID = "LINEAR", "LINEAR_EXACT", "SIGMOID"
FUNCTIONS = (LINEAR, LINEAR_EXACT, SIGMOID)
DEFAULT_PERCENTILES = (0.5, 99.5)
SAMPLE_STEP = 4  # default windows look at every 4th row and column


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = LINEAR
    explanation: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"center": self.center, "width": self.width, "function": self.function, "explanation": self.explanation}


@dataclass(frozen=True)
class Lut:
    """A lookup table (Modality or VOI LUT Sequence item)."""

    first: int
    data: np.ndarray
    bits: int

    def apply(self, values: np.ndarray) -> np.ndarray:
        index = np.clip(np.rint(values).astype(np.int64) - self.first, 0, len(self.data) - 1)
        return self.data[index]


@dataclass(frozen=True)
class Grayscale:
    """What turns stored values of one image into display values 0..255."""

    slope: float = 1.0
    intercept: float = 0.0
    modality_lut: Lut | None = None
    window: Window | None = None  # None: the VOI LUT applies (or, lacking one, a default)
    voi_lut: Lut | None = None
    invert: bool = False

    def with_window(self, window: Window) -> Grayscale:
        return replace(self, window=window, voi_lut=None)

    def modality(self, stored: np.ndarray) -> np.ndarray:
        if self.modality_lut is not None:
            return self.modality_lut.apply(stored).astype(np.float64)
        return stored.astype(np.float64) * self.slope + self.intercept

    def display(self, modality_values: np.ndarray) -> np.ndarray:
        """Modality values -> 0..255 (float), through the VOI and Presentation LUTs."""
        if self.window is not None:
            out = window_function(modality_values, self.window)
        elif self.voi_lut is not None:
            out = self.voi_lut.apply(modality_values).astype(np.float64) * (255.0 / ((1 << self.voi_lut.bits) - 1))
        else:
            raise ValueError("Grayscale needs a window or a VOI LUT")
        return 255.0 - out if self.invert else out

    def to_uint8(self, stored: np.ndarray) -> np.ndarray:
        """Stored values (any integer or float array) -> uint8 display values."""
        if stored.dtype in (np.uint8, np.int8, np.uint16, np.int16):
            return self.table(stored.dtype)[stored.view(UNSIGNED[stored.dtype])]
        return _round_uint8(self.display(self.modality(stored)))

    def table(self, dtype: np.dtype) -> np.ndarray:
        """The pipeline over every value of an 8 or 16-bit dtype, indexed by its unsigned view.
        Tables without LUT data are kept: the frames of a series or loop share them."""
        if self.modality_lut is None and self.voi_lut is None:
            return _linear_table(np.dtype(dtype).str, self.slope, self.intercept, self.window, self.invert)
        return self._compute_table(np.dtype(dtype))

    def _compute_table(self, dtype: np.dtype) -> np.ndarray:
        return _round_uint8(self.display(self.modality(every_value(dtype))))


@functools.lru_cache(maxsize=64)
def _linear_table(dtype: str, slope: float, intercept: float, window: Window | None, invert: bool) -> np.ndarray:
    table = Grayscale(slope, intercept, None, window, None, invert)._compute_table(np.dtype(dtype))
    table.flags.writeable = False  # shared between requests
    return table


UNSIGNED: dict[np.dtype, type[np.unsignedinteger]] = {
    np.dtype(np.uint8): np.uint8,
    np.dtype(np.int8): np.uint8,
    np.dtype(np.uint16): np.uint16,
    np.dtype(np.int16): np.uint16,
}


def every_value(dtype: np.dtype) -> np.ndarray:
    """Every value of an 8 or 16-bit integer dtype, in the order of its unsigned view: a table
    computed over them is indexed by ``values.view(UNSIGNED[dtype])``."""
    unsigned = UNSIGNED[np.dtype(dtype)]
    return np.arange(np.iinfo(unsigned).max + 1, dtype=np.int64).astype(unsigned).view(dtype)


def _round_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def window_function(x: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 C.11.2.1.2 (LINEAR), C.11.2.1.3.1 (LINEAR_EXACT) and C.11.2.1.3.2 (SIGMOID),
    with an output range of 0..255."""
    c, w = window.center, window.width
    if window.function == SIGMOID:
        return 255.0 / (1.0 + np.exp(-4.0 * (x - c) / max(w, 1e-9)))
    if window.function == LINEAR_EXACT:
        w = max(w, 1e-9)
        return np.clip(((x - c) / w + 0.5) * 255.0, 0.0, 255.0)
    w = max(w, 1.0)
    if w == 1.0:  # the standard's step function: at or below c - 0.5 is black
        return np.where(x <= c - 0.5, 0.0, 255.0)
    return np.clip(((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0, 0.0, 255.0)


def from_header(ds: Dataset, index: int = 0) -> Grayscale:
    """The pipeline the file asks for frame ``index``: its Modality LUT, its first VOI (window
    or LUT) and its Presentation LUT Shape / MONOCHROME1 inversion.  ``window`` stays None when
    the file has no VOI at all; ``default_window`` then chooses one from the pixels."""
    ds = frame_attributes(ds, index)
    little = ds.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.2"
    modality_lut = None
    if ds.get("ModalityLUTSequence"):
        modality_lut = read_lut(ds.ModalityLUTSequence[0], little)
    slope = _number(ds.get("RescaleSlope"), 1.0) or 1.0
    intercept = _number(ds.get("RescaleIntercept"), 0.0)
    windows = file_windows(ds)
    voi_lut = read_lut(ds.VOILUTSequence[0], little) if not windows and ds.get("VOILUTSequence") else None
    return Grayscale(slope, intercept, modality_lut, windows[0] if windows else None, voi_lut, inverted_by_file(ds))


# Enhanced multi-frame objects keep rescale and window in functional group macros.
_FUNCTIONAL_GROUPS = {
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction"),
}


def frame_attributes(ds: Dataset, index: int) -> Dataset:
    """``ds`` with the rescale and window of frame ``index`` from the Per-frame (else Shared)
    Functional Groups over the top-level ones; ``ds`` itself when it has no such groups."""
    shared = ds.get("SharedFunctionalGroupsSequence") or []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if not shared and not per_frame:
        return ds
    groups = ([per_frame[index]] if index < len(per_frame) else []) + list(shared[:1])
    merged = Dataset()
    merged.update(ds)
    merged.file_meta = ds.file_meta
    for sequence, keywords in _FUNCTIONAL_GROUPS.items():
        item = next((found[0] for g in groups if (found := g.get(sequence))), None)
        if item is None:
            continue
        for keyword in keywords:
            if keyword in item:
                setattr(merged, keyword, item.get(keyword))
    return merged


def inverted_by_file(ds: Dataset) -> bool:
    """Presentation LUT Shape INVERSE inverts; without a shape, MONOCHROME1 does
    (PS3.3 C.11.6.1.2: in DX, MONOCHROME1 comes with INVERSE meaning the same thing)."""
    shape = str(ds.get("PresentationLUTShape", "")).strip().upper()
    if shape in ("IDENTITY", "INVERSE"):
        return shape == "INVERSE"
    return str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"


def file_windows(ds: Dataset) -> list[Window]:
    """Every window the file names (Window Center/Width are multi-valued), with its explanation."""
    centers, widths = _numbers(ds.get("WindowCenter")), _numbers(ds.get("WindowWidth"))
    explanations = _strings(ds.get("WindowCenterWidthExplanation"))
    function = str(ds.get("VOILUTFunction", LINEAR) or LINEAR).strip().upper()
    if function not in FUNCTIONS:
        function = LINEAR
    windows = []
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):  # as many as both give
        if w > 0:
            windows.append(Window(c, w, function, explanations[i] if i < len(explanations) else ""))
    return windows


def read_lut(item: Dataset, little_endian: bool) -> Lut:
    descriptor = [int(v) for v in item.LUTDescriptor]
    entries = descriptor[0] or 65536
    # First Stored Pixel Value Mapped is US or SS by context; a value above 32767 is negative.
    first = descriptor[1] - 65536 if descriptor[1] > 32767 else descriptor[1]
    bits = descriptor[2]
    raw = item.LUTData
    data: np.ndarray
    if isinstance(raw, bytes):
        data = np.frombuffer(raw, dtype="<u2" if little_endian else ">u2")[:entries].astype(np.uint16)
    else:
        data = np.asarray(raw if isinstance(raw, (list, tuple)) else [raw], dtype=np.uint32)[:entries]
    if data.size and int(data.max()) >= 1 << bits:  # a descriptor that understates its depth
        bits = int(data.max()).bit_length()
    return Lut(first, data, max(bits, 1))


def default_window(grayscale: Grayscale, stored: np.ndarray, stored_bits: int, signed: bool) -> Window:
    """A window for an image that names none.  Up to 8 bits stored the data is taken as
    display-ready (the full range); deeper data gets the 0.5..99.5 percentile range of the
    frame's modality values, so a few hot or dead pixels do not flatten the picture."""
    if stored_bits <= 8:
        lo_stored = -(1 << (stored_bits - 1)) if signed else 0
        hi_stored = (1 << (stored_bits - 1)) - 1 if signed else (1 << stored_bits) - 1
        ends = grayscale.modality(np.array([lo_stored, hi_stored]))
        lo, hi, how = float(ends.min()), float(ends.max()), "full range"
    else:
        sample = stored[::SAMPLE_STEP, ::SAMPLE_STEP] if stored.ndim == 2 else stored
        lo, hi = (float(v) for v in np.percentile(grayscale.modality(sample), DEFAULT_PERCENTILES))
        how = "percentiles"
    # Centre and width that put lo at 0 and hi at 255 with the LINEAR function.
    return Window((lo + hi) / 2.0 + 0.5, max(hi - lo, 0.0) + 1.0, LINEAR, f"default ({how})")


def _number(value: Any, default: float) -> float:
    values = _numbers(value)
    return values[0] if values else default


def _numbers(value: Any) -> list[float]:
    if value is None or value == "":
        return []
    items = (
        value
        if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") and not isinstance(value, str)
        else [value]
    )
    out = []
    for item in items:
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            continue
    return out


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]
