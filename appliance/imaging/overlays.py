"""Overlay planes (60xx): ROI outlines, annotations and orientation letters, burned in.

Read and drawn as DCMTK's dcmimgle does by default (DiOverlayPlane and
DiMonoOutputPixelTemplate::overlay), after the whole grayscale or colour pipeline, on the
8-bit display values:

- groups 6000-601E (even), each with Overlay Rows, Columns, Origin (1-based row and column of
  the plane's first pixel; zero, negative or past the image is allowed: only what falls on
  the image is drawn), Bits Allocated and Bit Position;
- Overlay Data (60xx,3000) in the dataset, one bit per pixel, for one frame (drawn on every
  frame) or, with Number of Frames in Overlay, for the frames from Image Frame Origin on; a
  plane whose data is shorter than declared is not drawn;
- without Overlay Data, the retired form: bit Overlay Bit Position of the stored values of
  uncompressed pixel data, above the stored bits, in the frame being drawn;
- Overlay Type G (graphics) burned in white, the top of the display range; R (region of
  interest) darkens what the plane covers outside the region (value >> 4).

DCMTK draws overlays on grayscale images only; Lightbox draws them on colour images too.

Only the rows of a plane that fall on the image are read and unpacked, and a plane of more
than ``PLANE_FACTOR`` times the image's pixels (and over ``MIN_PLANE_CAP``) is not drawn: the
work stays within a few times the frame's own, whatever the file declares.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

if TYPE_CHECKING:
    from appliance.imaging.source import FrameSource

log = logging.getLogger("lightbox.imaging.overlays")

GROUPS = tuple(range(0x6000, 0x6020, 2))  # the 16 planes DCMTK reads
PLANE_FACTOR = 4
MIN_PLANE_CAP = 1 << 24  # pixels per overlay frame always allowed (2 MB of overlay data)
WHITE = 255
ROI_SHIFT = 4  # DCMTK darkens by half the output bits
ROWS, COLUMNS, FRAMES, TYPE, ORIGIN, FRAME_ORIGIN = 0x0010, 0x0011, 0x0015, 0x0040, 0x0050, 0x0051
BITS_ALLOCATED, BIT_POSITION, LABEL, DATA = 0x0100, 0x0102, 0x1500, 0x3000
UNDEFINED_LENGTH = 0xFFFFFFFF

Box = tuple[int, int, int, int]  # first row, end row, first column, end column on the image


@dataclass(frozen=True)
class Plane:
    group: int
    rows: int
    columns: int
    top: int  # image row of the plane's first row, from 0; may be negative
    left: int
    frames: int  # frames of overlay data
    frame_origin: int  # image frame (from 0) of the first overlay frame
    multiframe: bool  # Number of Frames in Overlay given; without it one frame serves all (CP-1974)
    roi: bool
    bit_position: int
    embedded: bool  # in the unused high bits of the pixel data
    label: str

    def frame_for(self, index: int) -> int | None:
        """The overlay frame (from 0) drawn on image frame ``index``, or None."""
        if not self.multiframe:
            return 0
        k = index - self.frame_origin
        return k if 0 <= k < self.frames else None

    def as_dict(self) -> dict[str, Any]:
        return {"group": f"{self.group:04X}", "type": "R" if self.roi else "G", "label": self.label,
                "frames": self.frames if self.multiframe else None, "embedded": self.embedded}  # fmt: skip


def planes(ds: Dataset) -> tuple[Plane, ...]:
    """The overlay planes of an image that can be drawn, from its header alone."""
    return tuple(p for p in (_plane(ds, g) for g in GROUPS if (g, ROWS) in ds) if p is not None)


def on_frame(source: FrameSource, index: int) -> list[tuple[Plane, int, Box]]:
    """The planes drawn on frame ``index`` (from 0), each with its overlay frame and the part
    of the image it covers."""
    found = []
    for plane in source.overlays:
        k = plane.frame_for(index)
        y0, y1 = max(plane.top, 0), min(plane.top + plane.rows, source.rows)
        x0, x1 = max(plane.left, 0), min(plane.left + plane.columns, source.columns)
        if k is not None and y0 < y1 and x0 < x1:
            found.append((plane, k, (y0, y1, x0, x1)))
    return found


def draw(targets: Sequence[np.ndarray], source: FrameSource, index: int) -> None:
    """Burn the overlays of frame ``index`` into each of ``targets`` (uint8 display values,
    rows x columns or rows x columns x 3), plane after plane in group order, as DCMTK does."""
    for plane, k, box in on_frame(source, index):
        bits = _bits(source, index, plane, k, box)
        y0, y1, x0, x1 = box
        for pixels in targets:
            area = pixels[y0:y1, x0:x1]
            if plane.roi:
                area[~bits] >>= ROI_SHIFT
            else:
                area[bits] = WHITE


def layer(source: FrameSource, index: int) -> np.ndarray:
    """The overlays of frame ``index`` as an RGBA picture to lay over the displayed frame (the
    viewer windows grayscale frames itself).  Drawn into a black and a white frame: where they
    differ the frame shows through, and by how much is the opacity."""
    low = np.zeros((source.rows, source.columns), np.uint8)
    high = np.full_like(low, WHITE)
    draw([low, high], source, index)
    alpha = WHITE - (high - low)
    grey = np.minimum(np.rint(low * 255.0 / np.maximum(alpha, 1)), WHITE).astype(np.uint8)
    return np.dstack([grey, grey, grey, alpha])


def _bits(source: FrameSource, index: int, plane: Plane, k: int, box: Box) -> np.ndarray:
    """The plane's bits over ``box`` of the image, as booleans."""
    y0, y1, x0, x1 = box
    rows, columns = slice(y0 - plane.top, y1 - plane.top), slice(x0 - plane.left, x1 - plane.left)
    if plane.embedded:
        stored = source.stored_values(index)[: plane.rows * plane.columns].reshape(plane.rows, plane.columns)
        return ((stored[rows, columns] >> plane.bit_position) & 1).astype(bool)
    # Only the plane's rows that fall on the image, at the plane's full width.
    first = (k * plane.rows + rows.start) * plane.columns
    count = (rows.stop - rows.start) * plane.columns
    start, stop = first >> 3, (first + count + 7) >> 3
    element = source.ds.get_item((plane.group, DATA), keep_deferred=True)
    swapped = element.VR == "OW" and not source.transfer_syntax.is_little_endian
    if swapped:  # OW in big endian: the bytes of each 16-bit word are swapped
        start, stop = start & ~1, stop + (stop & 1)
    data = np.frombuffer(_value_bytes(source, element, start, stop).ljust(stop - start, b"\0"), np.uint8)
    if swapped:
        data = data.reshape(-1, 2)[:, ::-1].ravel()
    bits = np.unpackbits(data, bitorder="little")
    offset = first - start * 8
    return bits[offset : offset + count].reshape(-1, plane.columns)[:, columns].view(bool)


def _value_bytes(source: FrameSource, element: Any, start: int, stop: int) -> bytes:
    value = element.value
    if value is None:  # left on disk by the header read (values over 1 MB)
        return source.read_at(element.value_tell + start, stop - start)
    return bytes(value[start:stop])


def _plane(ds: Dataset, group: int) -> Plane | None:
    rows, columns = _overlay_int(ds, group, ROWS), _overlay_int(ds, group, COLUMNS)
    origin, position = _ints(_overlay_value(ds, group, ORIGIN)), _overlay_int(ds, group, BIT_POSITION)
    if not rows or not columns or not origin or position is None or _overlay_int(ds, group, BITS_ALLOCATED) is None:
        return None  # DCMTK needs all of them
    image_pixels = (_image_int(ds, "Rows") or 0) * (_image_int(ds, "Columns") or 0)
    if rows * columns > max(PLANE_FACTOR * image_pixels, MIN_PLANE_CAP):
        log.info("overlay not drawn group=%04X reason=plane of %dx%d pixels over the cap", group, rows, columns)
        return None
    frames = max(_overlay_int(ds, group, FRAMES) or 1, 1)
    common: dict[str, Any] = {
        "group": group, "rows": rows, "columns": columns, "top": origin[0] - 1,
        "left": (origin[1] if len(origin) > 1 else 1) - 1,
        "roi": str(_overlay_value(ds, group, TYPE) or "").strip().upper() == "R",
        "label": str(_overlay_value(ds, group, LABEL) or "").strip(),
    }  # fmt: skip
    length = _data_length(ds, group)
    if length:
        if length * 8 < frames * rows * columns:
            log.info("overlay not drawn group=%04X reason=overlay data shorter than declared", group)
            return None
        frame_origin = max((_overlay_int(ds, group, FRAME_ORIGIN) or 1) - 1, 0)
        multiframe = (group, FRAMES) in ds
        return Plane(
            **common, frames=frames, frame_origin=frame_origin, multiframe=multiframe, bit_position=0, embedded=False
        )
    return _embedded(ds, common, position, image_pixels)


def _embedded(ds: Dataset, common: dict[str, Any], position: int, image_pixels: int) -> Plane | None:
    """The retired form: the overlay in bits of the stored values outside the stored bits."""
    allocated = _image_int(ds, "BitsAllocated") or 0
    stored = _image_int(ds, "BitsStored") or allocated
    high = _image_int(ds, "HighBit")
    high = stored - 1 if high is None else high
    syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    if syntax is None or UID(syntax).is_encapsulated or (_image_int(ds, "SamplesPerPixel") or 1) != 1:
        return None
    if allocated not in (8, 16) or common["rows"] * common["columns"] > image_pixels:
        return None
    position = min(position, allocated - 1)  # DCMTK's correction
    if position <= high and position + stored > high:  # a bit of the image itself
        return None
    return Plane(**common, frames=1, frame_origin=0, multiframe=False, bit_position=position, embedded=True)


def _data_length(ds: Dataset, group: int) -> int:
    element = ds.get_item((group, DATA), keep_deferred=True)
    if element is None:
        return 0
    if element.value is not None:
        return len(element.value) if isinstance(element.value, (bytes, bytearray)) else 0
    length = getattr(element, "length", 0)  # a value left on disk: its length as read
    return 0 if length == UNDEFINED_LENGTH else int(length)


def _overlay_value(ds: Dataset, group: int, element: int) -> Any:
    return getattr(ds.get((group << 16) | element), "value", None)


def _overlay_int(ds: Dataset, group: int, element: int) -> int | None:
    values = _ints(_overlay_value(ds, group, element))
    return values[0] if values else None


def _image_int(ds: Dataset, keyword: str) -> int | None:
    values = _ints(ds.get(keyword))
    return values[0] if values else None


def _ints(value: Any) -> list[int]:
    items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    try:
        return [int(v) for v in items if v not in (None, "")]
    except (TypeError, ValueError):
        return []
