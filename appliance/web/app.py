"""The bottle application.  Routes are thin: they ask the archive and render.

Route modules expose ``install(app, archive, guard)``; every route they add is either behind
``guard`` or marked ``public`` (``check_routes`` refuses anything else at start-up).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import bottle

from appliance import __version__, config
from appliance.archive import Archive
from appliance.backup.schedule import Trigger
from appliance.config import Settings
from appliance.imaging import ImagingOptions
from appliance.imaging.videos import VideoLibrary, VideoOptions
from appliance.web import (
    accounts,
    admin,
    attachments,
    backup,
    connect,
    corrections,
    devices,
    dicomweb,
    documents,
    downloads,
    frames,
    https,
    ohif,
    presentation,
    printing,
    reports,
    shared,
    shares,
    site,
    studies,
    video,
    wizard,
    worklist,
)
from appliance.web.auth import Auth, Guard, fail, public
from appliance.web.https import HttpsDoor
from appliance.web.templates import STATIC

SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)


def make_app(
    archive: Archive,
    imaging: ImagingOptions | None = None,
    settings: Settings | None = None,
    backup_trigger: Trigger | None = None,
    https_door: HttpsDoor | None = None,
) -> bottle.Bottle:
    app = bottle.Bottle()
    setup_code_file = Path(settings.setup_code_file) if settings is not None and settings.setup_code_file else None
    guard = Guard(Auth(archive, setup_code_file))
    door = https_door or HttpsDoor()
    https.install(app, archive, guard, door)  # first: its fingerprint line follows the setup code's

    @app.get("/healthz")
    @public
    def healthz() -> dict:
        """Liveness and a few figures; no login needed, no patient data."""
        free = archive.free_bytes()
        return {
            "status": "ok" if free > archive.options.min_free_mb * 1024 * 1024 else "disk_low",
            "version": __version__,
            "counts": archive.counts(),
            "free_disk_bytes": free,
            "last_change": archive.last_change(),
        }

    @app.get("/static/<path:path>")
    @public
    def static(path: str):
        answer = bottle.static_file(path, root=str(STATIC))
        answer.set_header("Cache-Control", "no-cache")  # revalidate: an upgrade must not leave old scripts
        return answer

    videos = VideoLibrary(archive.data_dir / "cache" / "videos",
                          VideoOptions.from_settings(settings) if settings is not None else VideoOptions())  # fmt: skip
    accounts.install(app, archive, guard, door)
    for module in (downloads, documents, corrections, presentation, printing, reports):
        module.install(app, archive, guard)
    studies.install(app, archive, guard, videos, imaging or ImagingOptions())
    video.install(app, archive, guard, videos)
    in_force = settings or config.load(environ={})  # the defaults, for an app made without settings
    admin.install(app, archive, guard, in_force, door)
    attachments.install(app, archive, guard, Path(in_force.video_ffmpeg), in_force.attach_max_mb << 20)
    devices.install(app, archive, guard, in_force)
    site.install(app, archive, guard, in_force.aet)
    connect.install(app, archive, guard, in_force)
    wizard.install(app, archive, guard, in_force, door)
    frames.install(app, archive, guard, imaging)
    backup.install(app, archive, guard, settings, backup_trigger)
    dicomweb.install(app, archive, guard, in_force)
    ohif.install(app, archive, guard)
    worklist.install(app, archive, guard)
    shares.install(app, archive, guard, in_force)  # share links: made on the study page,
    shared.install(app, archive, guard, videos, imaging or ImagingOptions())  # opened at /share/<token>

    def error_page(error: bottle.HTTPError) -> Any:
        answer = fail(
            error.status_code, error.body if isinstance(error.body, str) and error.body else error.status_line
        )
        bottle.response.content_type = answer.content_type
        return answer.body

    for status in (400, 403, 404, 405, 500):
        app.error(status)(error_page)
    check_routes(app)
    return app


def check_routes(app: bottle.Bottle) -> None:
    """Every route must say who may use it: ``@guard``/``@guard(role)`` or ``@public``."""
    unmarked = [f"{r.method} {r.rule}" for r in app.routes if getattr(r.callback, "access", None) is None]
    if unmarked:
        raise RuntimeError(f"routes without @guard or @public: {', '.join(unmarked)}")


def with_security_headers(app: Callable) -> Callable:
    """WSGI middleware: the security headers on every answer, errors and static files included;
    nothing is cached unless the route says otherwise (pages hold patient data)."""

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            headers = headers + [h for h in SECURITY_HEADERS if h[0].lower() not in present]
            if "cache-control" not in present:
                headers.append(("Cache-Control", "no-store"))
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return wrapped
