"""A multi-frame image (a cine loop) as one animated GIF or WebP, for sharing.

Frames are decoded, rendered and fitted one at a time and handed to Pillow's encoder from a
generator; what stays in memory is the encoder's state (GIF keeps its palettised frames, WebP
only its encoded output), bounded by ``MAX_FRAMES`` frames of at most ``BOX`` pixels a side.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from PIL import Image

from appliance.imaging.render import View, fit, to_image
from appliance.imaging.source import FrameSource, ImagingError

ANIMATED = {"gif": "image/gif", "webp": "image/webp"}
BOX = 512
MAX_FRAMES = 300
DEFAULT_FRAME_MS = 100.0


def frame_duration_ms(source: FrameSource) -> float:
    """Frame Time, else 1000 / Recommended Display Frame Rate or Cine Rate, else 10 frames/s."""
    for keyword, per_second in (("FrameTime", False), ("RecommendedDisplayFrameRate", True), ("CineRate", True)):
        try:
            value = float(source.ds.get(keyword) or 0)
        except (TypeError, ValueError):
            continue
        if value > 0:
            return 1000.0 / value if per_second else value
    return DEFAULT_FRAME_MS


def animate(source: FrameSource, fmt: str, view: View) -> bytes:
    if fmt not in ANIMATED:
        raise ValueError(f"format must be one of {', '.join(ANIMATED)}")
    if source.frames > MAX_FRAMES:
        raise ImagingError(f"{source.frames} frames: animations are limited to {MAX_FRAMES}")
    # Never enlarged: an animation is for sharing, not for looking closer.
    box_w = min(view.width or BOX, BOX, source.columns)
    box_h = min(view.height or BOX, BOX, source.rows)

    def frames() -> Iterator[Image.Image]:
        for index in range(source.frames):
            image = fit(to_image(source, index, view), box_w, box_h)
            yield image.convert("RGB") if fmt == "gif" and image.mode == "L" else image

    sequence = frames()
    first = next(sequence)
    out = io.BytesIO()
    duration = max(int(round(frame_duration_ms(source))), 20)  # browsers slow down faster GIFs
    options = {"quality": 80} if fmt == "webp" else {"optimize": False}
    first.save(out, fmt.upper(), save_all=True, append_images=sequence, duration=duration, loop=0, **options)
    return out.getvalue()
