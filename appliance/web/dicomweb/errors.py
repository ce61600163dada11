"""PS3.18 error answers: a status and a reason, as JSON."""

from __future__ import annotations

import bottle


def problem(status: int, reason: str) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(bottle.json_dumps({"error": reason}), status, **{"Content-Type": "application/json"})
