"""PS3.18 error answers: a status with a reason, as JSON."""

from __future__ import annotations

import json

import bottle


def problem(status: int, reason: str) -> bottle.HTTPResponse:
    """The error answer ``status`` (400, 404, 406, 413, 415, ...) with ``reason`` for the client."""
    return bottle.HTTPResponse(json.dumps({"error": reason}), status, {"Content-Type": "application/json"})
