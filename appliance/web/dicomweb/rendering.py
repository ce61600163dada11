"""The query parameters of a ``rendered`` request (PS3.18 8.3.5.1), checked and bounded:
``quality`` (1-100), ``window=center,width[,function]`` (linear, linear-exact, sigmoid),
``viewport=vw,vh[,sx,sy,sw,sh]``.  What Lightbox does not do is refused with a reason rather
than ignored: ``annotation`` (nothing is burned in) and an ``iccprofile`` other than ``no``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import bottle

from appliance import imaging
from appliance.imaging import Window
from appliance.web.dicomweb.errors import problem

MAX_SIDE = 4096  # a viewport's width or height (rule 9: the picture made is bounded)
MAX_REGION = 1 << 16  # a source region's offsets and sides: frames are smaller (Rows and Columns are US)
DEFAULT_QUALITY = 90


@dataclass(frozen=True)
class RenderParams:
    quality: int = DEFAULT_QUALITY
    window: Window | None = None
    size: tuple[int, int] | None = None  # the viewport (vw, vh): the picture fits inside it
    region: tuple[int, int, int, int] | None = None  # (sx, sy, sw, sh) of the frame


def render_params(query: bottle.FormsDict) -> RenderParams:
    """The request's rendering parameters; a 400 with the reason for any it cannot honour."""
    if "annotation" in query:
        raise problem(400, "annotation is not supported: Lightbox burns in no annotations")
    if query.get("iccprofile", "no").strip().lower() != "no":
        raise problem(400, "iccprofile is not supported: only iccprofile=no")
    size, region = _viewport(query.get("viewport", ""))
    return RenderParams(_quality(query.get("quality", "")), _window(query.get("window", "")), size, region)


def _quality(text: str) -> int:
    if not text:
        return DEFAULT_QUALITY
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise problem(400, "quality must be a whole number from 1 to 100")
    return int(text)


def _viewport(text: str) -> tuple[tuple[int, int] | None, tuple[int, int, int, int] | None]:
    """``vw,vh`` and, optionally, the source region ``sx,sy,sw,sh`` (each of the four may be
    empty: 0, 0 and the rest of the frame).  A negative sw or sh flips the region."""
    if not text:
        return None, None
    pieces = [p.strip() for p in text.split(",")]
    if len(pieces) not in (2, 6) or not all(p.isdigit() and 1 <= int(p) <= MAX_SIDE for p in pieces[:2]):
        raise problem(400, f"viewport must be vw,vh[,sx,sy,sw,sh], vw and vh from 1 to {MAX_SIDE}")
    size = (int(pieces[0]), int(pieces[1]))
    if len(pieces) == 2:
        return size, None
    try:
        sx, sy = (int(p) if p else 0 for p in pieces[2:4])
        sw, sh = (int(p) if p else MAX_REGION for p in pieces[4:6])
    except ValueError:
        raise problem(400, "viewport's sx,sy,sw,sh must be whole numbers") from None
    if not (0 <= sx < MAX_REGION and 0 <= sy < MAX_REGION and sw and sh and max(abs(sw), abs(sh)) <= MAX_REGION):
        raise problem(400, f"viewport's sx and sy must be from 0, sw and sh non-zero, all within {MAX_REGION}")
    return size, (sx, sy, sw, sh)


def _window(text: str) -> Window | None:
    if not text:
        return None
    pieces = [p.strip() for p in text.split(",")]
    try:
        center, width = float(pieces[0]), float(pieces[1])
    except (ValueError, IndexError):
        raise problem(400, "window must be center,width[,function]") from None
    function = pieces[2].upper().replace("-", "_") if len(pieces) > 2 and pieces[2] else imaging.FUNCTIONS[0]
    if len(pieces) > 3 or not (math.isfinite(center) and 0 < width < math.inf) or function not in imaging.FUNCTIONS:
        raise problem(400, "window width must be positive, its function linear, linear-exact or sigmoid")
    return Window(center, width, function)
