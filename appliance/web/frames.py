"""Frames, thumbnails and viewer facts over HTTP (JSON API under /api/).

    GET /api/instances/<sop_uid>/frames/<n>/rendered   JPEG/PNG/WebP of frame n (from 1)
        ?window=C,W or ?window-center=&window-width= (as Orthanc)   ?function=LINEAR|LINEAR_EXACT|SIGMOID
        ?width=&height= (fit)   ?format=jpeg|png|webp   ?overlays=1|0 (burn in overlay planes; default 1)
        ?quality=1..100   ?invert=1   ?download=1 (attachment named without patient data)
        X-Lightbox-Overlays: the number of overlay planes on the frame, drawn or not
    GET /api/instances/<sop_uid>/frames/<n>/raw        16-bit values; X-Lightbox-Pixels: LUT parameters
    GET /api/instances/<sop_uid>/frames/<n>/overlay    the frame's overlay planes alone (PNG with alpha)
    GET /api/instances/<sop_uid>/animation             every frame as a looping GIF or WebP
        ?format=gif|webp, and window, invert, width, height, overlays, download as above
    GET /api/series/<series_uid>/thumbnail             JPEG of a representative frame (cached)
    GET /api/series/<series_uid>/viewer                JSON: instances in order, frames, calibration
    GET /api/series/<series_uid>/geometry              JSON: Frame of Reference, each image's position
        and orientation (in the viewer's order; asked for only when viewports are linked)

Every route is wrapped in ``guard`` (sessions and login belong to the web UI).  Refusals are
JSON ``{"error": ...}`` with 400 (bad query), 404 (no such instance, series or frame), 413
(over the decode cap) or 422 (not displayable), and one log line without patient data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import bottle

from appliance import imaging
from appliance.archive import Archive, InstanceEntry, kinds
from appliance.imaging import ImagingOptions, Thumbnails, Window
from appliance.web.refusals import Refused, refusing

log = logging.getLogger("lightbox.web.frames")

Guard = Callable[[Callable[..., Any]], Callable[..., Any]]
MAX_SIDE = 8192
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}


def install(app: bottle.Bottle, archive: Archive, guard: Guard, options: ImagingOptions | None = None) -> None:
    """Add the frame routes to ``app``, each wrapped in ``guard``."""
    options = options or ImagingOptions()
    thumbnails = Thumbnails(archive.data_dir / "cache" / "thumbnails", options)

    def route(path: str, handler: Callable[..., Any]) -> None:
        app.route(path, "GET", guard(refusing(handler, _refusal)))

    def instance_or_404(sop_uid: str) -> InstanceEntry:
        entry = archive.instance(sop_uid)
        if entry is None:
            raise Refused(404, "no such instance")
        return entry

    def rendered(sop_uid: str, n: str) -> bottle.HTTPResponse:
        entry = instance_or_404(sop_uid)
        frame = _frame_number(n)
        query = bottle.request.query
        fmt = _format(query, imaging.FORMATS, "jpeg")
        quality = _bounded(query, "quality", 1, 100) or 90
        picture = imaging.render_frame(archive.file_path(entry.file_key), frame, fmt=fmt, quality=quality,
                                       options=options, **_view(query))  # fmt: skip
        response = _picture(picture, f"image-{entry.instance_number or 0}-frame-{frame}.{EXTENSIONS[fmt]}")
        response.set_header("X-Lightbox-Overlays", str(picture.overlays))
        return response

    def overlay(sop_uid: str, n: str) -> bottle.HTTPResponse:
        entry = instance_or_404(sop_uid)
        frame = _frame_number(n)
        picture = imaging.overlay_layer(archive.file_path(entry.file_key), frame, options=options)
        return _picture(picture, f"overlay-{entry.instance_number or 0}-frame-{frame}.png")

    def animation(sop_uid: str) -> bottle.HTTPResponse:
        entry = instance_or_404(sop_uid)
        query = bottle.request.query
        fmt = _format(query, imaging.ANIMATED, "gif")
        picture = imaging.animation(archive.file_path(entry.file_key), fmt=fmt, options=options, **_view(query))
        return _picture(picture, f"cine-{entry.instance_number or 0}.{fmt}")

    def raw(sop_uid: str, n: str) -> bottle.HTTPResponse:
        entry = instance_or_404(sop_uid)
        frame = imaging.raw_frame(archive.file_path(entry.file_key), _frame_number(n), options=options)
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Lightbox-Pixels": frame.parameters_json(),
            "Cache-Control": "private, max-age=300",
        }
        return bottle.HTTPResponse(frame.data, 200, headers)

    def thumbnail(series_uid: str) -> bottle.HTTPResponse:
        representative = archive.middle_instance(series_uid)
        if representative is None:
            raise Refused(404, "no such series, or no images in it")
        picture = thumbnails.get(archive.file_path(representative.file_key), representative.sop_uid)
        return bottle.HTTPResponse(
            picture.data, 200, {"Content-Type": picture.media_type, "Cache-Control": "private, max-age=300"}
        )

    def viewer(series_uid: str) -> bottle.HTTPResponse:
        entry = archive.series_entry(series_uid)
        if entry is None or not entry.instances:
            raise Refused(404, "no such series")
        images = [i for i in entry.instances if i.kind == kinds.IMAGE]  # videos and documents open elsewhere
        if not images:
            raise Refused(422, "no images in this series: it holds a video, a document or a report")
        first = images[0]
        image = imaging.image_info(archive.file_path(first.file_key), options=options)
        body = {
            "series": entry.series,
            "study": entry.study,
            "patient": entry.patient,
            "image": image,
            "presets": _presets(str(entry.series.get("modality", "")), image, str(entry.patient.get("species") or "")),
            "instances": [_instance_json(i) for i in images],
            "frames": sum(i.frames for i in images),
        }
        return bottle.HTTPResponse(
            json.dumps(body), 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}
        )

    def geometry(series_uid: str) -> bottle.HTTPResponse:
        entry = archive.series_entry(series_uid)
        images = [i for i in entry.instances if i.kind == kinds.IMAGE] if entry else []
        if not images:
            raise Refused(404, "no such series, or no images in it")
        body = imaging.series_geometry(archive.file_path(i.file_key) for i in images)
        return bottle.HTTPResponse(
            json.dumps(body), 200, {"Content-Type": "application/json", "Cache-Control": "private, max-age=300"}
        )

    route("/api/instances/<sop_uid>/frames/<n>/rendered", rendered)
    route("/api/instances/<sop_uid>/frames/<n>/raw", raw)
    route("/api/instances/<sop_uid>/frames/<n>/overlay", overlay)
    route("/api/instances/<sop_uid>/animation", animation)
    route("/api/series/<series_uid>/thumbnail", thumbnail)
    route("/api/series/<series_uid>/viewer", viewer)
    route("/api/series/<series_uid>/geometry", geometry)


def first_fetches(archive: Archive, series_uid: str, options: ImagingOptions) -> list[str]:
    """What viewer.js fetches first to show ``series_uid``: its viewer facts, then the first frame's
    values if it is grayscale (colour frames come rendered, and an image over the decode cap not
    at all), for the viewer page to ask for ahead of its scripts."""
    entry = archive.series_entry(series_uid)
    images = [i for i in entry.instances if i.kind == kinds.IMAGE] if entry else []
    if not images:
        return []
    fetches = [f"/api/series/{quote(series_uid)}/viewer"]
    info = imaging.image_info(archive.file_path(images[0].file_key), options=options)
    if info["grayscale"] and not info["too_large"]:
        fetches.append(f"/api/instances/{quote(images[0].sop_uid)}/frames/1/raw")
    return fetches


def _instance_json(entry: InstanceEntry) -> dict[str, Any]:
    return {
        "sop_uid": entry.sop_uid,
        "instance_number": entry.instance_number,
        "frames": entry.frames,
        "rows": entry.rows,
        "columns": entry.columns,
    }


def _presets(modality: str, image: dict[str, Any], species: str) -> list[dict[str, Any]]:
    """The file's windows first ("default from file"), then the modality's (imaging.presets)."""
    presets = [{"name": w["explanation"] or f"File {i + 1}", "center": w["center"], "width": w["width"], "source": "file"}
               for i, w in enumerate(image["windows"])]  # fmt: skip
    if image.get("grayscale"):
        presets += [
            {"name": name, "center": c, "width": w, "source": "modality"}
            for name, c, w in imaging.presets(modality, image, species)
        ]
    return presets


def _format(query: bottle.FormsDict, formats: dict[str, str], default: str) -> str:
    fmt = query.get("format", default).lower()
    if fmt not in formats:
        raise Refused(400, f"format must be one of {', '.join(formats)}")
    return fmt


def _view(query: bottle.FormsDict) -> dict[str, Any]:
    """The window, inversion, fit box and overlays a picture request asks for."""
    overlays = query.get("overlays", "1")
    if overlays not in ("0", "1"):
        raise Refused(400, "overlays must be 0 or 1")
    return {
        "window": _window(query),
        "invert": query.get("invert") == "1",
        "size": (_bounded(query, "width", 1, MAX_SIDE), _bounded(query, "height", 1, MAX_SIDE)),
        "overlays": overlays == "1",
    }


def _picture(picture: imaging.Rendered, download_name: str) -> bottle.HTTPResponse:
    """The picture, as an attachment named ``download_name`` (no patient data) if asked."""
    headers = {"Content-Type": picture.media_type, "Cache-Control": "private, max-age=300"}
    if bottle.request.query.get("download") == "1":
        headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return bottle.HTTPResponse(picture.data, 200, headers)


def _refusal(status: int, reason: str) -> bottle.HTTPResponse:
    log.warning("frame request refused status=%d path=%s reason=%s", status, _route_shape(), reason)
    return bottle.HTTPResponse(json.dumps({"error": reason}), status, {"Content-Type": "application/json"})


def _route_shape() -> str:
    """The route pattern, not the path: UIDs stay out of the log."""
    route = bottle.request.environ.get("bottle.route")
    return route.rule if route is not None else "?"


def _frame_number(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise Refused(400, "frame number must be an integer from 1") from None
    if number < 1:
        raise Refused(404, "frames are numbered from 1")
    return number


def _bounded(query: bottle.FormsDict, name: str, low: int, high: int) -> int | None:
    text = query.get(name)
    if text in (None, ""):
        return None
    try:
        value = int(text)
    except ValueError:
        raise Refused(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise Refused(400, f"{name} must be from {low} to {high}")
    return value


def _window(query: bottle.FormsDict) -> Window | None:
    """``window=C,W`` or ``window-center=C&window-width=W`` (``width`` is the fit box), with an
    optional ``function``."""
    pair: tuple[str, ...] | None = None
    if query.get("window"):
        pair = tuple(query.get("window").split(","))
    elif query.get("window-center") or query.get("window-width"):
        pair = (query.get("window-center", ""), query.get("window-width", ""))
    if pair is None:
        return None
    try:
        center, width = (float(v) for v in pair)
    except ValueError:
        raise Refused(400, "window must be center,width") from None
    if not width > 0 or not all(abs(v) < 1e12 for v in (center, width)):
        raise Refused(400, "window width must be positive")
    function = query.get("function", "LINEAR").upper()
    if function not in imaging.FUNCTIONS:
        raise Refused(400, f"function must be one of {', '.join(imaging.FUNCTIONS)}")
    return Window(center, width, function)
