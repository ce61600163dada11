"""The bottle application.  Routes are thin: they ask the archive and render."""

from __future__ import annotations

import bottle

from appliance import __version__
from appliance.archive import Archive


def make_app(archive: Archive) -> bottle.Bottle:
    app = bottle.Bottle()

    @app.get("/healthz")
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

    return app
