"""The study's report over HTTP: written on the study page, kept as Basic Text SR (appliance/reports).

    GET  /api/studies/<uid>/report           the current version, the history, who is asking
    POST /api/studies/<uid>/report           JSON {"text", "base", "final": bool, "amend": bool}:
        a new version (a draft, or final); ``base`` is the version the text was edited from
        ("" for none): any other current version is a 409.  A final report needs "amend": true.
    POST /api/studies/<uid>/report/discard   JSON {"base"}: the current draft deleted
    GET  /studies/<uid>/report/print          the printable page (?version=<sop>: an earlier one)

Any logged-in account may write, finalise and amend a report: in a small clinic the vet or
dentist who reads the images has a viewer account, and each version names its author.  Every
save, finalisation, amendment, discard and print is audited.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import bottle
from bottle import request

from appliance.archive import Archive, audit
from appliance.made.storing import NotStored
from appliance.reports import keeping
from appliance.reports.text import TextError, check
from appliance.web.auth import Guard, client_address, fail
from appliance.web.refusals import not_stored
from appliance.web.templates import render

LOG = logging.getLogger("lightbox.web.reports")


def install(app: bottle.Bottle, archive: Archive, guard: Guard) -> None:
    def now() -> datetime:
        zone = archive.site.zone()
        return datetime.now(zone) if zone is not None else datetime.now().astimezone()

    def state(study_uid: str) -> dict[str, Any]:
        count = archive.study_instance_count(study_uid)
        if count is None:
            raise fail(404, "no such study")
        found = keeping.versions(archive, study_uid)
        return {
            "study_uid": study_uid,
            "current": found[-1].as_json() if found else None,
            "history": [v.as_json() for v in reversed(found)],  # newest first
            "clinic_name": archive.site.get().clinic_name,
            "user": guard.user().name,
            "study_instances": count,  # the study page's count of what it shows, a report saved
        }

    @app.get("/api/studies/<study_uid>/report")
    @guard
    def report_api(study_uid: str) -> dict[str, Any]:
        return state(study_uid)

    @app.post("/api/studies/<study_uid>/report")
    @guard
    def save(study_uid: str) -> dict[str, Any]:
        user = guard.user().name
        body = _json_body(("text", "base", "final", "amend"))
        final, amend = body.get("final", False), body.get("amend", False)
        if not isinstance(final, bool) or not isinstance(amend, bool):
            raise _refused(study_uid, user, "final, amend: true or false")
        try:
            text = check(body.get("text"))
            version = keeping.save(archive, study_uid, text, final, amend, _base(body), user, client_address(), now())
        except TextError as exc:
            raise _refused(study_uid, user, str(exc)) from None
        except LookupError as exc:
            raise fail(404, str(exc)) from None
        except keeping.Conflict as exc:
            LOG.info("report_conflict study=%s user=%r reason=%r", study_uid[:64], user, str(exc))
            raise fail(409, str(exc)) from None
        except NotStored as exc:
            raise not_stored(exc) from None
        what = ("report amended" if version.amends else "report finalised") if final else (
            "report amendment draft saved" if version.amends else "report draft saved")  # fmt: skip
        guard.audit(audit.INSTANCES_ACCESSED, action="C", study_uid=study_uid,
                    detail=f"{what} (version {version.instance_number})")  # fmt: skip
        return state(study_uid)

    @app.post("/api/studies/<study_uid>/report/discard")
    @guard
    def discard(study_uid: str) -> dict[str, Any]:
        if archive.study_instance_count(study_uid) is None:
            raise fail(404, "no such study")
        try:
            gone = keeping.discard(archive, study_uid, _base(_json_body(("base",))), guard.user().name,
                                   client_address())  # fmt: skip
        except keeping.Conflict as exc:
            raise fail(409, str(exc)) from None
        guard.audit(audit.INSTANCES_ACCESSED, action="D", study_uid=study_uid,
                    detail=f"report draft discarded (version {gone.instance_number})")  # fmt: skip
        return state(study_uid)

    @app.get("/studies/<study_uid>/report/print")
    @guard
    def print_page(study_uid: str) -> str:
        found = archive.study_detail(study_uid)
        if found is None:
            raise fail(404, "no such study")
        versions = keeping.versions(archive, study_uid)
        asked = request.query.getunicode("version") or ""
        chosen = next((v for v in reversed(versions) if v.sop_uid == asked or not asked), None)
        if chosen is None:
            raise fail(404, "no such report version" if asked else "this study has no report yet")
        status = "final" if chosen.final else "draft"
        guard.audit(audit.INSTANCES_ACCESSED, study_uid=study_uid,
                    detail=f"report printed ({status}, version {chosen.instance_number})")  # fmt: skip
        return render("report_print.tpl", study=found.study.as_json(), version=chosen, versions=versions,
                      current=versions[-1], printed_by=guard.user().name)  # fmt: skip


def _base(body: dict[str, Any]) -> str:
    base = body.get("base", "")
    if not isinstance(base, str) or len(base) > 64:
        raise fail(400, "base: the SOP Instance UID of the version edited, or empty")
    return base


def _refused(study_uid: str, user: str, reason: str) -> bottle.HTTPResponse:
    LOG.info("report_refused study=%s user=%r reason=%r", study_uid[:64], user, reason)
    return fail(400, reason)


def _json_body(keys: tuple[str, ...]) -> dict[str, Any]:
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        raise fail(400, "the body must be application/json")
    try:
        body = json.loads(request.body.read())
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's stack
        raise fail(400, f"not JSON: {exc}"[:200]) from None
    if not isinstance(body, dict) or set(body) - set(keys):
        raise fail(400, f"the body must be a JSON object of {', '.join(keys)}")
    return body
