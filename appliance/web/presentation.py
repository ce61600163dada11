"""Presentation states over HTTP: the viewer saves what it shows, and reopens it.

    POST /api/series/<series_uid>/presentation-states   a JSON description (see
        appliance/presentation/description.py) -> a Grayscale or Color Softcopy Presentation
        State stored through ingest; answers {"sop_uid": ...}
    GET  /api/series/<series_uid>/presentation-states   those showing the series, newest first
    GET  /api/presentation-states/<sop_uid>             one, in the shape the POST takes

Any logged-in user may save one (a viewer account too: it changes no image, and the state
names its author); saving is audited as instances created, reading one as instances accessed.
A bad body is a 400 with the reason (and one log line); the body is bounded by bodylimits.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import bottle
from bottle import request

from appliance.archive import Archive, audit
from appliance.made.storing import NotStored
from appliance.presentation import reading, saving
from appliance.presentation.description import DescriptionError, parse
from appliance.web.auth import Guard, client_address, fail
from appliance.web.refusals import not_stored

LOG = logging.getLogger("lightbox.web.presentation")


def install(app: bottle.Bottle, archive: Archive, guard: Guard) -> None:
    @app.post("/api/series/<series_uid>/presentation-states")
    @guard
    def create(series_uid: str) -> dict[str, Any]:
        user = guard.user().name
        try:
            description = parse(_json_body())
            sop_uid = saving.save(archive, series_uid, description, user, client_address())
        except DescriptionError as exc:
            LOG.info("presentation_state_refused series=%s user=%r reason=%r", series_uid[:64], user, str(exc))
            raise fail(400, str(exc)) from None
        except LookupError as exc:
            raise fail(404, str(exc)) from None
        except NotStored as exc:
            raise not_stored(exc) from None
        study_uid = archive.study_of_series(series_uid) or ""
        guard.audit(audit.INSTANCES_ACCESSED, action="C", study_uid=study_uid,
                    detail=f"presentation state {description.label} saved")  # fmt: skip
        return {"sop_uid": sop_uid}

    @app.get("/api/series/<series_uid>/presentation-states")
    @guard
    def listing(series_uid: str) -> dict[str, Any]:
        found = saving.listing(archive, series_uid)
        if found is None:
            raise fail(404, "no such series")
        return {"presentation_states": found}

    @app.get("/api/presentation-states/<sop_uid>")
    @guard
    def one(sop_uid: str) -> dict[str, Any]:
        try:
            found = saving.load(archive, sop_uid)
        except reading.PresentationError as exc:
            raise fail(422, str(exc)) from None
        except OSError as exc:  # the index names a file the storage lacks
            raise fail(500, f"stored file unreadable ({exc.__class__.__name__})") from None
        if found is None:
            raise fail(404, "no such presentation state")
        guard.audit(audit.INSTANCES_ACCESSED, study_uid=found["study_uid"],
                    detail=f"presentation state {found['label']} opened")  # fmt: skip
        return found


def _json_body() -> Any:
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        raise DescriptionError("the body must be application/json")
    try:
        return json.loads(request.body.read())
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's stack
        raise DescriptionError(f"not JSON: {exc}"[:200]) from None
