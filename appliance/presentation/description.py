"""A presentation state as the viewer describes it in JSON, checked strictly.

The same shape comes back from ``reading`` (plus a few read-only keys: who made it, when), so
a saved state reopens.  Every list and string is bounded and every number must be finite: a
hostile client cannot make the server build an unbounded dataset.  A fault raises
``DescriptionError`` with the path of the offending value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

MAX_IMAGES = 4096  # referenced images (a long CT series)
MAX_FRAMES = 4096  # frame numbers, over all referenced images
MAX_ITEMS = 64  # VOI and displayed area items
MAX_LAYERS = 32
MAX_ANNOTATIONS = 256
MAX_GRAPHICS = 1024  # graphic objects, over all annotations
MAX_POINTS = 16384  # points, over all graphic objects
MAX_TEXTS = 256
MAX_TEXT = 1024  # Unformatted Text Value is ST: 1024 characters
MAX_COORDINATE = 1e6
SIZE_MODES = ("SCALE TO FIT", "TRUE SIZE", "MAGNIFY")
GRAPHIC_TYPES = {"POINT": (1, 1), "POLYLINE": (2, None), "INTERPOLATED": (2, None), "CIRCLE": (2, 2),
                 "ELLIPSE": (4, 4)}  # fmt: skip
UNITS = ("PIXEL", "DISPLAY")
# Keys ``reading`` adds; a client sending a state back unchanged may keep them (they are ignored).
READ_ONLY = frozenset({"sop_uid", "sop_class", "color", "series_uid", "study_uid", "instance_number", "creator",
                       "creation_date", "creation_time", "presentation_lut_shape", "truncated"})  # fmt: skip
_CS = re.compile(r"[A-Z0-9_ ]{1,16}")  # a Code String: Content Label, Graphic Layer
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # text may hold tab, line breaks, form feed


class DescriptionError(ValueError):
    """The JSON is not a presentation state Lightbox can make; the message says where and why."""


Point = tuple[float, float]


@dataclass(frozen=True)
class ImageRef:
    sop_uid: str
    frames: tuple[int, ...] = ()  # none: every frame
    series_uid: str = ""  # read back; on input, the URL's series or nothing


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    images: tuple[str, ...] = ()  # SOP Instance UIDs it applies to; none: every referenced image


@dataclass(frozen=True)
class Area:
    top_left: tuple[int, int]  # column, row of the first displayed pixel (1-based, may lie outside the image)
    bottom_right: tuple[int, int]
    size_mode: str = "SCALE TO FIT"
    magnification: float | None = None  # MAGNIFY
    pixel_spacing: tuple[float, float] | None = None  # TRUE SIZE: row, column spacing in mm
    aspect_ratio: tuple[int, int] = (1, 1)  # vertical, horizontal
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class Layer:
    name: str
    order: int
    description: str = ""


@dataclass(frozen=True)
class Graphic:
    type: str
    points: tuple[Point, ...]
    units: str = "PIXEL"
    filled: bool = False


@dataclass(frozen=True)
class Text:
    text: str
    anchor: Point | None = None
    anchor_visible: bool = False
    box: tuple[Point, Point] | None = None  # top left, bottom right
    units: str = "PIXEL"


@dataclass(frozen=True)
class Annotation:
    layer: str
    graphics: tuple[Graphic, ...] = ()
    texts: tuple[Text, ...] = ()
    images: tuple[str, ...] = ()
    frames: tuple[int, ...] = ()  # the frames of its (multi-frame) images it is drawn on; none: every frame


@dataclass(frozen=True)
class Description:
    label: str = "LIGHTBOX"
    description: str = ""
    images: tuple[ImageRef, ...] = ()  # none: every image of the series
    voi: tuple[Window, ...] = ()
    displayed_areas: tuple[Area, ...] = ()
    rotation: int = 0
    flip: bool = False
    layers: tuple[Layer, ...] = ()
    annotations: tuple[Annotation, ...] = ()


def parse(value: Any) -> Description:
    body = _object(value, "", set(Description.__dataclass_fields__) | READ_ONLY)
    counts = _Counts()
    images = tuple(_image(v, f"images[{i}]", counts) for i, v in enumerate(_list(body, "images", MAX_IMAGES)))
    layers = tuple(_layer(v, f"layers[{i}]") for i, v in enumerate(_list(body, "layers", MAX_LAYERS)))
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise DescriptionError("layers: two layers have the same name")
    rotation = _integer(body.get("rotation", 0), "rotation", 0, 270)
    if rotation % 90:
        raise DescriptionError("rotation: must be 0, 90, 180 or 270")
    return Description(
        label=_code_string(body.get("label", "LIGHTBOX"), "label"),
        description=_string(body.get("description", ""), "description", 64, single_line=True),
        images=images,
        voi=tuple(_window(v, f"voi[{i}]") for i, v in enumerate(_list(body, "voi", MAX_ITEMS))),
        displayed_areas=tuple(
            _area(v, f"displayed_areas[{i}]") for i, v in enumerate(_list(body, "displayed_areas", MAX_ITEMS))
        ),
        rotation=rotation,
        flip=_boolean(body.get("flip", False), "flip"),
        layers=layers,
        annotations=tuple(
            _annotation(v, f"annotations[{i}]", set(names), counts)
            for i, v in enumerate(_list(body, "annotations", MAX_ANNOTATIONS))
        ),
    )


class _Counts:
    """Totals over the whole description, each against its bound."""

    def __init__(self) -> None:
        self.totals = {"frames": 0, "graphics": 0, "points": 0, "texts": 0}
        self.bounds = {"frames": MAX_FRAMES, "graphics": MAX_GRAPHICS, "points": MAX_POINTS, "texts": MAX_TEXTS}

    def add(self, what: str, n: int, where: str) -> None:
        self.totals[what] += n
        if self.totals[what] > self.bounds[what]:
            raise DescriptionError(f"{where}: more than {self.bounds[what]} {what} in all")


def _image(value: Any, where: str, counts: _Counts) -> ImageRef:
    body = _object(value, where, {"sop_uid", "frames", "series_uid"})
    frames = tuple(
        _integer(v, f"{where}.frames[{i}]", 1, 1 << 31) for i, v in enumerate(_list(body, "frames", MAX_FRAMES, where))
    )
    counts.add("frames", len(frames), where)
    series = body.get("series_uid", "")
    return ImageRef(
        _uid(body.get("sop_uid"), f"{where}.sop_uid"), frames, _uid(series, f"{where}.series_uid") if series else ""
    )


def _window(value: Any, where: str) -> Window:
    body = _object(value, where, {"center", "width", "images"})
    width = _number(body.get("width"), f"{where}.width")
    if width < 1:
        raise DescriptionError(f"{where}.width: must be at least 1")
    return Window(_number(body.get("center"), f"{where}.center"), width, _uids(body, where))


def _area(value: Any, where: str) -> Area:
    keys = {"top_left", "bottom_right", "size_mode", "magnification", "pixel_spacing", "aspect_ratio", "images"}
    body = _object(value, where, keys)
    mode = body.get("size_mode", "SCALE TO FIT")
    if mode not in SIZE_MODES:
        raise DescriptionError(f"{where}.size_mode: one of {', '.join(SIZE_MODES)}")
    top_left = _pair(body.get("top_left"), f"{where}.top_left", integer=True)
    bottom_right = _pair(body.get("bottom_right"), f"{where}.bottom_right", integer=True)
    if bottom_right[0] < top_left[0] or bottom_right[1] < top_left[1]:
        raise DescriptionError(f"{where}: bottom_right must lie below and right of top_left")
    magnification = body.get("magnification")
    if mode == "MAGNIFY" or magnification is not None:
        magnification = _number(magnification, f"{where}.magnification", positive=True)
    spacing = body.get("pixel_spacing")
    if mode == "TRUE SIZE" or spacing is not None:
        spacing = _pair(spacing, f"{where}.pixel_spacing", positive=True)
    ratio = _pair(body.get("aspect_ratio", [1, 1]), f"{where}.aspect_ratio", integer=True, positive=True)
    return Area(top_left, bottom_right, mode, magnification, spacing, ratio, _uids(body, where))


def _layer(value: Any, where: str) -> Layer:
    body = _object(value, where, {"name", "order", "description"})
    return Layer(
        _code_string(body.get("name"), f"{where}.name"),
        _integer(body.get("order", 1), f"{where}.order", 0, 9999),
        _string(body.get("description", ""), f"{where}.description", 64, single_line=True),
    )


def _annotation(value: Any, where: str, layers: set[str], counts: _Counts) -> Annotation:
    body = _object(value, where, {"layer", "graphics", "texts", "images", "frames"})
    layer = _code_string(body.get("layer"), f"{where}.layer")
    if layer not in layers:
        raise DescriptionError(f"{where}.layer: no layer named {layer!r} in layers")
    graphics = _list(body, "graphics", MAX_GRAPHICS, where)
    texts = _list(body, "texts", MAX_TEXTS, where)
    if not graphics and not texts:
        raise DescriptionError(f"{where}: neither graphics nor texts")
    counts.add("graphics", len(graphics), where)
    counts.add("texts", len(texts), where)
    frames = tuple(
        _integer(v, f"{where}.frames[{i}]", 1, 1 << 31) for i, v in enumerate(_list(body, "frames", MAX_FRAMES, where))
    )
    counts.add("frames", len(frames), where)
    images = _uids(body, where)
    if frames and not images:
        raise DescriptionError(f"{where}.frames: frames belong to images; name them in images")
    return Annotation(
        layer,
        tuple(_graphic(v, f"{where}.graphics[{i}]", counts) for i, v in enumerate(graphics)),
        tuple(_text(v, f"{where}.texts[{i}]") for i, v in enumerate(texts)),
        images,
        frames,
    )


def _graphic(value: Any, where: str, counts: _Counts) -> Graphic:
    body = _object(value, where, {"type", "points", "units", "filled"})
    kind = body.get("type")
    if kind not in GRAPHIC_TYPES:
        raise DescriptionError(f"{where}.type: one of {', '.join(GRAPHIC_TYPES)}")
    points = _list(body, "points", MAX_POINTS, where)
    least, most = GRAPHIC_TYPES[kind]
    if len(points) < least or (most is not None and len(points) > most):
        raise DescriptionError(f"{where}.points: a {kind} has {least if least == most else f'at least {least}'} points")
    counts.add("points", len(points), where)
    units = _units(body, where)
    return Graphic(kind, tuple(_point(p, f"{where}.points[{i}]", units) for i, p in enumerate(points)), units,
                   _boolean(body.get("filled", False), f"{where}.filled"))  # fmt: skip


def _text(value: Any, where: str) -> Text:
    body = _object(value, where, {"text", "anchor", "anchor_visible", "box", "units"})
    units = _units(body, where)
    anchor = _point(body["anchor"], f"{where}.anchor", units) if body.get("anchor") is not None else None
    box = None
    if body.get("box") is not None:
        corners = body["box"]
        if not isinstance(corners, list) or len(corners) != 2:
            raise DescriptionError(f"{where}.box: two points, top left and bottom right")
        box = (_point(corners[0], f"{where}.box[0]", units), _point(corners[1], f"{where}.box[1]", units))
    if anchor is None and box is None:
        raise DescriptionError(f"{where}: an anchor, a box or both")
    text = _string(body.get("text"), f"{where}.text", MAX_TEXT)
    if not text.strip():
        raise DescriptionError(f"{where}.text: empty")
    return Text(text, anchor, _boolean(body.get("anchor_visible", anchor is not None), f"{where}.anchor_visible"),
                box, units)  # fmt: skip


# ------------------------------------------------------------------ values


def _object(value: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DescriptionError(f"{where or 'the body'}: must be a JSON object")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise DescriptionError(f"{where or 'the body'}: unknown key {unknown[0]!r}")
    return value


def _list(body: dict[str, Any], key: str, most: int, where: str = "") -> list[Any]:
    value = body.get(key, [])
    path = f"{where}.{key}" if where else key
    if not isinstance(value, list):
        raise DescriptionError(f"{path}: must be a list")
    if len(value) > most:
        raise DescriptionError(f"{path}: at most {most} items")
    return value


def _uids(body: dict[str, Any], where: str) -> tuple[str, ...]:
    return tuple(_uid(v, f"{where}.images[{i}]") for i, v in enumerate(_list(body, "images", MAX_IMAGES, where)))


def _uid(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > 64 or not _UID.fullmatch(value):
        raise DescriptionError(f"{where}: must be a UID")
    return value


def _string(value: Any, where: str, most: int, single_line: bool = False) -> str:
    if not isinstance(value, str):
        raise DescriptionError(f"{where}: must be a string")
    if len(value) > most:
        raise DescriptionError(f"{where}: at most {most} characters")
    if _CONTROL.search(value) or (single_line and ("\\" in value or re.search(r"[\r\n\t\f]", value))):
        raise DescriptionError(f"{where}: holds characters it may not hold")
    return value


def _code_string(value: Any, where: str) -> str:
    text = value.strip().upper() if isinstance(value, str) else None
    if text is None or not _CS.fullmatch(text):
        raise DescriptionError(f"{where}: 1 to 16 letters A-Z, digits, spaces or underscores")
    return text


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise DescriptionError(f"{where}: must be true or false")
    return value


def _number(value: Any, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DescriptionError(f"{where}: must be a finite number")
    if abs(value) > MAX_COORDINATE or (positive and value <= 0):
        raise DescriptionError(f"{where}: out of range")
    return float(value)


def _integer(value: Any, where: str, least: int, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise DescriptionError(f"{where}: must be a whole number from {least} to {most}")
    return value


def _pair(value: Any, where: str, integer: bool = False, positive: bool = False) -> tuple[Any, Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise DescriptionError(f"{where}: must be a list of two numbers")
    if integer:
        least = 1 if positive else -int(MAX_COORDINATE)
        return (_integer(value[0], f"{where}[0]", least, int(MAX_COORDINATE)),
                _integer(value[1], f"{where}[1]", least, int(MAX_COORDINATE)))  # fmt: skip
    return _number(value[0], f"{where}[0]", positive), _number(value[1], f"{where}[1]", positive)


def _units(body: dict[str, Any], where: str) -> str:
    units = body.get("units", "PIXEL")
    if units not in UNITS:
        raise DescriptionError(f"{where}.units: PIXEL or DISPLAY")
    return str(units)


def _point(value: Any, where: str, units: str) -> Point:
    x, y = _pair(value, where)
    if units == "DISPLAY" and not (0 <= x <= 1 and 0 <= y <= 1):
        raise DescriptionError(f"{where}: DISPLAY coordinates lie from 0 to 1")
    return x, y
