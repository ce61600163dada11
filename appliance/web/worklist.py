"""The Schedule: the worklist's orders that modalities fetch (``archive.worklist``).

Every logged-in user sees the Schedule page and ``GET /api/worklist``; admins schedule,
change and cancel (the page's forms, and the JSON API: ``POST /api/worklist``,
``PATCH /api/worklist/<id>``, ``DELETE /api/worklist/<id>`` which cancels).  A body is a
form or a JSON object of ``archive.WORKLIST_FIELDS``.  Every change is audited.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import bottle
from bottle import request

from appliance.archive import WORKLIST_FIELDS, Archive, WorklistError, audit
from appliance.web.auth import Guard, fail, see_other
from appliance.web.templates import render


def _fields() -> dict[str, str]:
    """The body's worklist fields: a JSON object or a form."""
    if request.content_type.split(";")[0].strip().lower() == "application/json":
        body = request.json
        if not isinstance(body, dict):
            raise fail(400, "a JSON object is needed")
        return {k: str(v) for k, v in body.items() if k in WORKLIST_FIELDS}
    return {k: request.forms.getunicode(k, "") for k in WORKLIST_FIELDS if k in request.forms}


def _item_id(text: str) -> int:
    if not text.isdigit():
        raise fail(404, "no such worklist item")
    return int(text)


def install(app: bottle.Bottle, archive: Archive, guard: Guard) -> None:
    worklist = archive.worklist

    def record(action: str, item: dict[str, Any], what: str) -> None:
        guard.audit(audit.APPLICATION_ACTIVITY, action=action, study_uid=item["study_uid"],
                    detail=f"worklist item {item['id']} {what} (accession {item['accession']})")  # fmt: skip

    def create(fields: dict[str, str]) -> dict[str, Any]:
        try:
            item = worklist.create(fields)
        except WorklistError as exc:
            raise fail(400, str(exc)) from None
        record("C", item, "scheduled")
        return item

    def change(item_id: int, fields: dict[str, str]) -> dict[str, Any]:
        try:
            item = worklist.update(item_id, fields)
        except WorklistError as exc:
            raise fail(404 if worklist.get(item_id) is None else 400, str(exc)) from None
        record("U", item, "changed: " + ", ".join(sorted(fields)))
        return item

    def cancel(item_id: int) -> dict[str, Any]:
        try:
            item = worklist.cancel(item_id)
        except WorklistError as exc:
            raise fail(404, str(exc)) from None
        record("D", item, "cancelled")
        return item

    def listing() -> list[dict[str, Any]]:
        include_done = request.query.get("done") == "1"
        since = request.query.get("since", date.today().strftime("%Y%m%d")).replace("-", "")
        items = worklist.listing(include_done=include_done, since=since)
        stopped = [item["id"] for item in items if item["state"] == "DISCONTINUED"]
        reasons = archive.performed.reasons(stopped) if stopped else {}
        for item in items:  # a discontinued step is for staff to see, with why (MPPS)
            item["discontinued_reason"] = reasons.get(item["id"], "")
        return items

    @app.get("/schedule")
    @guard
    def schedule_page():
        editing = worklist.get(int(request.query.edit)) if request.query.get("edit", "").isdigit() else None
        study_uid, term = request.query.getunicode("study") or "", request.query.getunicode("patient") or ""
        found = worklist.patients(term=term, study_uid=study_uid) if (term or study_uid) else []
        chosen = found[0] if study_uid and found else {}
        if request.query.get("pick", "").isdigit() and int(request.query.pick) < len(found):
            chosen = found[int(request.query.pick)]
        stations = sorted({n.aet for n in archive.nodes.all()} | {d.aet for d in archive.devices.all(False)})
        return render(
            "schedule.tpl", user=guard.user(), csrf=guard.csrf_token(), section="schedule", items=listing(),
            editing=editing, form=editing or {"start_date": date.today().isoformat(), **chosen}, stations=stations,
            found=found, term=term, study_uid=study_uid, show_done=request.query.get("done") == "1",
        )  # fmt: skip

    @app.post("/schedule")
    @guard("admin")
    def schedule_form():
        create(_fields())
        return see_other("/schedule")

    @app.post("/schedule/<item_id>")
    @guard("admin")
    def edit_form(item_id: str):
        change(_item_id(item_id), _fields())
        return see_other("/schedule")

    @app.post("/schedule/<item_id>/cancel")
    @guard("admin")
    def cancel_form(item_id: str):
        cancel(_item_id(item_id))
        return see_other("/schedule")

    @app.get("/api/worklist")
    @guard
    def worklist_api() -> dict:
        return {"items": listing()}

    @app.post("/api/worklist")
    @guard("admin")
    def create_api() -> dict:
        bottle.response.status = 201
        return create(_fields())

    @app.get("/api/worklist/<item_id>")
    @guard
    def item_api(item_id: str) -> dict:
        item = worklist.get(_item_id(item_id))
        if item is None:
            raise fail(404, "no such worklist item")
        return item

    @app.route("/api/worklist/<item_id>", method="PATCH")
    @guard("admin")
    def change_api(item_id: str) -> dict:
        return change(_item_id(item_id), _fields())

    @app.delete("/api/worklist/<item_id>")
    @guard("admin")
    def cancel_api(item_id: str) -> dict:
        return cancel(_item_id(item_id))
