"""DICOMweb error answers (PS3.18 8.6, 10.6.1.3): a status and a reason a person can read."""

from __future__ import annotations

import bottle


def problem(status: int, reason: str) -> bottle.HTTPResponse:
    """An error answer: JSON ``{"error": reason}`` (400 bad parameter, 404, 406 unacceptable
    ``Accept``, 413, 415 ...); raise it or return it."""
    return bottle.HTTPResponse(bottle.json_dumps({"error": reason}), status, **{"Content-Type": "application/json"})
