"""Frames to pictures: rendered JPEG/PNG/WebP, stored JPEG passed through, raw 16-bit values."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from appliance.imaging import color, grayscale, overlays
from appliance.imaging.grayscale import Grayscale, Window
from appliance.imaging.source import FrameSource, ImagingError

FORMATS = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
# Bounds on what is made, whatever the fit box asks: a 4K screen's width, and upscaling only to
# what a screen shows (the browser enlarges further for free).  A 64 x 64 image asked at 8192 x
# 8192 as WebP took the main process from 359 to 1,009 MB.
MAX_OUTPUT_SIDE = 4096
MAX_UPSCALED_SIDE = 2048
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
_PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


@dataclass(frozen=True)
class Rendered:
    data: bytes
    media_type: str
    passed_through: bool = False  # the stored JPEG bytes, not decoded
    overlays: int = 0  # overlay planes on the frame, drawn or not


@dataclass(frozen=True)
class RawFrame:
    """Stored values of a grayscale frame (little-endian 16-bit, row by row) and what the
    browser needs to window them: value = stored * slope + intercept, then the window."""

    data: bytes
    parameters: dict[str, Any]

    def parameters_json(self) -> str:
        return json.dumps(self.parameters, separators=(",", ":"))


@dataclass(frozen=True)
class View:
    """What the caller asks of a frame beyond the file's own presentation."""

    window: Window | None = None
    invert: bool = False
    width: int | None = None
    height: int | None = None
    overlays: bool = True  # burn in the overlay planes (60xx), as DCMTK does by default
    # (x, y, width, height) of the frame to show, before fitting; a negative width or height
    # flips the region (PS3.18 8.3.5.1.3 sx,sy,sw,sh).
    region: tuple[int, int, int, int] | None = None

    @property
    def resized(self) -> bool:
        return bool(self.width or self.height)


def render(source: FrameSource, index: int, view: View, fmt: str = "jpeg", quality: int = 90) -> Rendered:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    planes = len(overlays.on_frame(source, index))
    if fmt == "jpeg" and not (view.overlays and planes) and _stored_jpeg_fits(source, view):
        data = source.encoded_frame(index)
        if data[:2] == b"\xff\xd8":
            return Rendered(data, FORMATS["jpeg"], passed_through=True, overlays=planes)
    image = to_image(source, index, view)
    if view.region is not None:
        image = crop(image, view.region)
    if view.resized:
        image = fit(image, view.width, view.height)
    return Rendered(encode(image, fmt, quality), FORMATS[fmt], overlays=planes)


def render_layer(source: FrameSource, index: int) -> Rendered:
    """The overlays of frame ``index`` alone, as a PNG with transparency at the frame's size."""
    source.check_frame(index)
    image = Image.fromarray(overlays.layer(source, index), "RGBA")
    return Rendered(encode(image, "png", 0), FORMATS["png"], overlays=len(overlays.on_frame(source, index)))


def to_image(source: FrameSource, index: int, view: View) -> Image.Image:
    """Frame ``index`` through the whole display pipeline, overlays last, as an 8-bit L or RGB
    image."""
    frame, photometric = source.decode(index)
    if photometric in MONOCHROME:
        pixels = pipeline_for(source, index, frame, view).to_uint8(frame)
    else:
        pixels = color.to_rgb8(frame, photometric, source.ds)
        if view.invert:
            pixels = 255 - pixels
    if view.overlays:
        pixels = pixels if pixels.flags.writeable else pixels.copy()
        overlays.draw([pixels], source, index)
    return Image.fromarray(np.ascontiguousarray(pixels), "L" if pixels.ndim == 2 else "RGB")


def pipeline_for(source: FrameSource, index: int, frame: np.ndarray, view: View) -> Grayscale:
    """The file's grayscale pipeline with the caller's window (and inversion) over it; the
    default window when neither the caller nor the file names one."""
    pipeline = grayscale.from_header(source.ds, index)
    if view.window is not None:
        pipeline = pipeline.with_window(view.window)
    elif pipeline.window is None and pipeline.voi_lut is None:
        pipeline = pipeline.with_window(grayscale.default_window(pipeline, frame, *_stored_depth(source)))
    if view.invert:
        pipeline = replace(pipeline, invert=not pipeline.invert)
    return pipeline


def raw(source: FrameSource, index: int) -> RawFrame:
    frame, photometric = source.decode(index)
    if photometric not in MONOCHROME:
        raise ImagingError("raw frames are for grayscale images; use the rendered frame")
    pipeline = pipeline_for(source, index, frame, View())
    slope, intercept = pipeline.slope, pipeline.intercept
    if pipeline.modality_lut is not None:  # a table the browser has not got: apply it here
        frame = pipeline.modality_lut.apply(frame).astype(np.uint16)
        slope, intercept = 1.0, 0.0
    if frame.dtype.kind not in "iu" or frame.dtype.itemsize > 2:
        raise ImagingError(f"raw frames carry 16-bit values, not {frame.dtype}")
    signed = frame.dtype.kind == "i"
    values = frame.astype("<i2" if signed else "<u2")
    window = pipeline.window or _window_of_lut(pipeline)
    parameters = {
        "rows": int(frame.shape[0]),
        "columns": int(frame.shape[1]),
        "dtype": "int16" if signed else "uint16",
        "slope": slope,
        "intercept": intercept,
        "window": window.as_dict(),
        "invert": pipeline.invert,
        "overlays": len(overlays.on_frame(source, index)),
    }
    return RawFrame(values.tobytes(), parameters)


def _window_of_lut(pipeline: Grayscale) -> Window:
    """The linear window closest to a VOI LUT: from where it leaves its lowest output to
    where it reaches its highest (the browser windows linearly)."""
    lut = pipeline.voi_lut
    assert lut is not None
    rising = np.nonzero(lut.data > lut.data.min())[0]
    top = np.nonzero(lut.data >= lut.data.max())[0]
    lo = lut.first + (int(rising[0]) - 1 if rising.size else 0)
    hi = lut.first + (int(top[0]) if top.size else len(lut.data) - 1)
    return Window((lo + hi) / 2.0 + 0.5, max(hi - lo, 0) + 1.0, grayscale.LINEAR, "from the VOI LUT")


def _stored_depth(source: FrameSource) -> tuple[int, bool]:
    bits = int(source.ds.get("BitsStored") or source.bits_allocated)
    return bits, int(source.ds.get("PixelRepresentation") or 0) == 1


def _stored_jpeg_fits(source: FrameSource, view: View) -> bool:
    """Whether the stored JPEG Baseline frame is exactly what rendering would produce:
    YBR colour (what browsers assume a 3-component JPEG holds) or an 8-bit MONOCHROME2 frame
    with no LUT, rescale or window that would change it; no resize, window or inversion asked."""
    if source.transfer_syntax != JPEG_BASELINE or view.resized or view.region or view.window is not None or view.invert:
        return False
    if source.photometric in ("YBR_FULL_422", "YBR_FULL"):
        return True
    if source.photometric != "MONOCHROME2" or int(source.ds.get("BitsStored") or 8) != 8:
        return False
    pipeline = grayscale.from_header(source.ds)
    identity = pipeline.modality_lut is None and pipeline.slope == 1.0 and pipeline.intercept == 0.0
    return identity and pipeline.window is None and pipeline.voi_lut is None and not pipeline.invert


def crop(image: Image.Image, region: tuple[int, int, int, int]) -> Image.Image:
    """The part of ``image`` that ``region`` covers (cut at the image's edges), flipped where
    its width or height is negative; a region wholly outside the image is an error."""
    x, y, width, height = region
    box = (max(0, x), max(0, y), min(image.width, x + abs(width)), min(image.height, y + abs(height)))
    if box[0] >= box[2] or box[1] >= box[3]:
        raise ImagingError(f"the region {x},{y},{width},{height} is outside the {image.width}x{image.height} frame")
    image = image.crop(box)
    if width < 0:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if height < 0:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return image


def fit(image: Image.Image, width: int | None, height: int | None) -> Image.Image:
    """Scale to fit inside width x height (either may be missing), keeping the aspect ratio."""
    box_w = min(width or MAX_OUTPUT_SIDE, MAX_OUTPUT_SIDE)
    box_h = min(height or MAX_OUTPUT_SIDE, MAX_OUTPUT_SIDE)
    scale = min(box_w / image.width, box_h / image.height)
    scale = min(scale, max(1.0, MAX_UPSCALED_SIDE / max(image.size)))
    target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if target == image.size:
        return image
    factor = int(1 / scale)
    if factor >= 2:  # box-reduce by a whole factor first: ~7x faster than one big resize
        image = image.reduce(factor)
    return image.resize(target, Image.Resampling.BILINEAR)


def encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, "PNG", compress_level=3)  # level 6 costs 3x the time for ~5 % less
    else:
        image.save(out, _PIL_FORMAT[fmt], quality=quality)
    return out.getvalue()
