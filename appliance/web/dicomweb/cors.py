"""CORS for DICOMweb (``dicomweb_cors_origins``): a viewer served from another origin may use
/dicom-web/ with HTTP Basic.  Nothing is added when the setting is empty, and never to other
paths; credentials mode (cookies) is not allowed, so another site cannot ride a session."""

from __future__ import annotations

import bottle
from bottle import request, response

from appliance.config import Settings
from appliance.web.auth import Guard, public
from appliance.web.dicomweb import PREFIX

ALLOWED_METHODS = "GET, HEAD, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Accept, Content-Type, Range"
EXPOSED_HEADERS = "Warning, Content-Type, Content-Length, Content-Location, Content-Range, Accept-Ranges"
PREFLIGHT_MAX_AGE_S = 600


def origins(settings: Settings) -> frozenset[str]:
    return frozenset(o.strip().rstrip("/") for o in str(settings.dicomweb_cors_origins).split(",") if o.strip())


def install(app: bottle.Bottle, guard: Guard, settings: Settings) -> None:
    allowed = origins(settings)
    if not allowed:
        return
    guard.auth.cors_origins = allowed  # their POSTs pass the Origin check (auth.check_origin)

    def allowed_origin() -> str | None:
        origin = request.get_header("Origin")
        if origin in allowed and request.path.startswith(PREFIX + "/"):
            return origin
        return None

    @app.hook("after_request")
    def cors_headers() -> None:
        origin = allowed_origin()
        if origin is not None:
            response.set_header("Access-Control-Allow-Origin", origin)
            response.set_header("Access-Control-Expose-Headers", EXPOSED_HEADERS)
            response.add_header("Vary", "Origin")

    @app.route(PREFIX + "/<path:path>", method="OPTIONS")
    @public
    def preflight(path: str) -> bottle.HTTPResponse:
        """A preflight tells nothing about the archive: no login asked."""
        answer = bottle.HTTPResponse(status=204)
        if allowed_origin() is not None:
            answer.set_header("Access-Control-Allow-Methods", ALLOWED_METHODS)
            answer.set_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
            answer.set_header("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE_S))
        return answer
