"""Pixels to screen: decode one frame, apply the display pipeline, encode it.

Public API (paths are stored files; frames are numbered from 1, as in DICOM):

- ``render_frame(path, frame, window=, size=, fmt=, quality=, invert=, overlays=, region=)`` -> ``Rendered``
- ``raw_frame(path, frame)`` -> ``RawFrame`` (16-bit values and their LUT parameters)
- ``overlay_layer(path, frame)`` -> ``Rendered`` (the frame's overlay planes alone, PNG with alpha)
- ``image_info(path)`` -> dict (size, windows, calibration, frame timing, overlays; header only)
- ``animation(path, fmt=)`` -> ``Rendered`` (every frame as one animated GIF or WebP)
- ``Thumbnails`` -> series thumbnails in a size-capped disk cache
- ``frame_bytes(path, frame, as_stored=)`` -> ``FrameBytes`` (a frame for DICOMweb: its encoded
  bytes as stored, or native little endian pixels, decoded if need be)

Every call refuses, with ``TooLarge``, a file whose declared pixel data (rows x columns x
frames x samples x bytes) exceeds ``ImagingOptions.max_decode_mb``; other trouble is an
``ImagingError``.  At most ``DECODING`` calls decode pixels at once in a process.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian

from appliance.imaging.animate import ANIMATED, animate
from appliance.imaging.cache import DiskCache
from appliance.imaging.describe import describe
from appliance.imaging.geometry import series_geometry
from appliance.imaging.grayscale import FUNCTIONS, Window
from appliance.imaging.presets import presets
from appliance.imaging.render import FORMATS, RawFrame, Rendered, View, raw, render, render_layer
from appliance.imaging.source import FrameSource, ImagingError, NoSuchFrame, TooLarge

__all__ = [
    "ANIMATED", "FORMATS", "FUNCTIONS", "ImagingError", "ImagingOptions", "NoSuchFrame", "RawFrame", "Rendered",
    "FrameBytes", "Thumbnails", "TooLarge", "Window", "animation", "frame_bytes", "image_info", "overlay_layer",
    "presets", "raw_frame", "render_frame", "series_geometry",
]  # fmt: skip

MB = 1024 * 1024
EXPLICIT_LE = str(ExplicitVRLittleEndian)  # what a decoded frame is sent as
THUMBNAIL_VERSION = 2  # raised when rendering changes, so that cached thumbnails are made again


@dataclass(frozen=True)
class ImagingOptions:
    max_decode_mb: int = 1024
    thumbnail_size: int = 160
    thumbnail_cache_mb: int = 64

    @classmethod
    def from_settings(cls, settings: Any) -> ImagingOptions:
        return cls(settings.imaging_max_decode_mb, settings.thumbnail_size, settings.thumbnail_cache_mb)

    @property
    def max_decode_bytes(self) -> int:
        return self.max_decode_mb * MB


DEFAULTS = ImagingOptions()
# Each decode takes tens of MB for a moment (a 10 MB radiograph passes through 16-bit and 8-bit
# copies and an encoder): two at once, whatever the web server's eight threads ask, keep the
# service within its 200 MB on a 1 GB box.  The others wait their turn.
DECODING = threading.BoundedSemaphore(2)


@contextlib.contextmanager
def _decoding(path: Path, options: ImagingOptions) -> Iterator[FrameSource]:
    with DECODING, FrameSource(path, options.max_decode_bytes) as source:
        yield source


def render_frame(
    path: Path,
    frame: int,
    *,
    window: Window | tuple[float, float] | None = None,
    size: tuple[int | None, int | None] | None = None,
    fmt: str = "jpeg",
    quality: int = 90,
    invert: bool = False,
    overlays: bool = True,
    region: tuple[int, int, int, int] | None = None,
    options: ImagingOptions = DEFAULTS,
) -> Rendered:
    """Frame ``frame`` (from 1) as a JPEG, PNG or WebP picture, fitted into ``size``
    (width, height) when given.  ``window`` overrides the file's VOI; ``overlays`` burns in
    the overlay planes; ``region`` (x, y, width, height) shows part of the frame (``View``)."""
    if isinstance(window, tuple):
        window = Window(float(window[0]), float(window[1]))
    width, height = size or (None, None)
    with _decoding(path, options) as source:
        return render(source, frame - 1, View(window, invert, width, height, overlays, region), fmt, quality)


def raw_frame(path: Path, frame: int, *, options: ImagingOptions = DEFAULTS) -> RawFrame:
    with _decoding(path, options) as source:
        return raw(source, frame - 1)


@dataclass(frozen=True)
class FrameBytes:
    data: bytes
    transfer_syntax: str  # the stored syntax when as stored, else Explicit VR Little Endian


def frame_bytes(path: Path, frame: int, *, as_stored: bool, options: ImagingOptions = DEFAULTS) -> FrameBytes:
    """Frame ``frame`` (from 1) of a stored file: with ``as_stored``, an encapsulated frame's
    bytes as stored; otherwise (or for native pixel data) its pixels as native little endian
    values, row by row, read straight from the file when stored so, else decoded."""
    with FrameSource(path, options.max_decode_bytes) as source:
        index = frame - 1
        source.check_frame(index)
        if source.encapsulated and as_stored:
            return FrameBytes(source.encoded_frame(index), str(source.transfer_syntax))
        if not source.encapsulated and source.transfer_syntax.is_little_endian and source.bits_allocated % 8 == 0:
            size = source.rows * source.columns * source.samples * source.bits_allocated // 8
            if (index + 1) * size <= source.pixels.length:
                return FrameBytes(source.read_at(source.pixels.value_offset + index * size, size), EXPLICIT_LE)
    with _decoding(path, options) as source:
        array, _photometric = source.decode(index)
        return FrameBytes(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(), EXPLICIT_LE)


def overlay_layer(path: Path, frame: int, *, options: ImagingOptions = DEFAULTS) -> Rendered:
    """The overlay planes of frame ``frame`` (from 1) alone, as a PNG with transparency to lay
    over the frame (``overlays``: how many planes it holds)."""
    with _decoding(path, options) as source:
        return render_layer(source, frame - 1)


def animation(
    path: Path,
    *,
    fmt: str = "gif",
    window: Window | None = None,
    invert: bool = False,
    size: tuple[int | None, int | None] | None = None,
    overlays: bool = True,
    options: ImagingOptions = DEFAULTS,
) -> Rendered:
    """All frames as one looping animation at the file's frame rate (for sharing a cine)."""
    width, height = size or (None, None)
    with _decoding(path, options) as source:
        return Rendered(animate(source, fmt, View(window, invert, width, height, overlays)), ANIMATED[fmt])


def image_info(path: Path, *, options: ImagingOptions = DEFAULTS) -> dict[str, Any]:
    """Header facts for a viewer; ``too_large`` tells it that frames will be refused."""
    try:
        with FrameSource(path, options.max_decode_bytes) as source:
            return {**describe(source.ds, source.frames, source.overlays), "too_large": False}
    except TooLarge:
        with FrameSource(path, max_decode_bytes=1 << 62) as source:
            return {**describe(source.ds, source.frames, source.overlays), "too_large": True}


class Thumbnails:
    """One small JPEG per series, made from a representative frame and kept on disk."""

    def __init__(self, folder: Path, options: ImagingOptions = DEFAULTS) -> None:
        self.options = options
        self.cache = DiskCache(folder, options.thumbnail_cache_mb * MB)
        self.cache.drop_ungrouped()

    def get(self, path: Path, sop_uid: str, frame: int = 1) -> Rendered:
        """The thumbnail of ``frame`` of the stored file ``path`` of instance ``sop_uid`` (the
        entry's group, for ``DiskCache.purge``), overlays drawn."""
        side = self.options.thumbnail_size

        def make() -> bytes:
            return render_frame(path, frame, size=(side, side), fmt="jpeg", quality=80, options=self.options).data

        return Rendered(self.cache.get_or_make(self.key(path, frame), ".jpg", make, sop_uid), "image/jpeg")

    def key(self, path: Path, frame: int) -> str:
        """Stored files are content-addressed, so the path and frame name the picture for good
        (until rendering changes: ``THUMBNAIL_VERSION``)."""
        return f"{Path(path).resolve()}:{frame}:{self.options.thumbnail_size}:v{THUMBNAIL_VERSION}"
