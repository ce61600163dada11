"""Admin pages: the archive at a glance (with a "not backed up" warning until the backup is set
up, and the set-up steps still to do), this box's name, time zone and AE title, HTTPS, users,
the audit trail; and their JSON twins."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import bottle
from bottle import request

from appliance import __version__, config
from appliance.archive import MIN_PASSWORD, Archive, UserError, audit, time_zones
from appliance.backup.state import BackupState
from appliance.config import Settings
from appliance.web import https, site, wizard
from appliance.web.auth import Guard, fail
from appliance.web.devices import node_json
from appliance.web.studies import with_study_labels
from appliance.web.templates import render

AUDIT_PAGE = 50


def install(app: bottle.Bottle, archive: Archive, guard: Guard, settings: Settings, door: https.HttpsDoor) -> None:
    backoff = guard.auth.backoff

    def users() -> list[dict[str, Any]]:
        return [
            {"name": u.name, "role": u.role, "created_at": u.created_at, "login_wait_s": backoff.account_wait(u.name)}
            for u in archive.users.all()
        ]

    def overview() -> dict[str, Any]:
        steps = wizard.step_states(archive)
        return {
            "version": __version__,
            "counts": archive.counts(),
            "disk": archive.disk_usage(),
            "last_change": archive.last_change(),
            "recent_changes": with_study_labels(
                archive,
                [
                    {"seq": c.seq, "kind": c.kind, "at": c.at, "study_uid": c.study_uid}
                    for c in archive.recent_changes(20)
                ],
            ),
            "recent_activity": [asdict(e) for e in archive.audit.recent(20)],
            "nodes": [node_json(n) for n in archive.nodes.all()],
            "users": users(),
            "settings": config.effective(settings),
            "site": {k: v for k, v in site.site_json(archive, settings.aet).items() if k != "time_zones"},
            "https": https.facts(archive, door, "/admin"),
            "backed_up": BackupState(archive.data_dir).configured,  # else the page warns, until it is
            "setup_steps_left": [step.title for step in wizard.STEPS if not steps[step.name]],
        }

    @app.get("/admin")
    @guard("admin")
    def admin_page():
        return render(
            "admin.tpl", user=guard.user(), csrf=guard.csrf_token(), section="admin", info=overview(),
            min_password=MIN_PASSWORD, time_zones=time_zones(),
        )  # fmt: skip

    @app.get("/api/admin")
    @guard("admin")
    def admin_api() -> dict:
        return overview()

    def audit_page_data() -> dict[str, Any]:
        """A page of the trail with its filters; the cursors to the pages either side keep them."""
        get = request.query.getunicode
        form = {
            "event": get("event", "") or "",
            "user": (get("user", "") or "").strip(),
            "failures": get("failures", "") or "",
        }
        try:
            cursor = {k: int(v) for k in ("before", "after", "limit") if (v := get(k, "") or "")}
            page = archive.audit.page(audit.AuditQuery(
                event=form["event"], user_name=form["user"], failures_only=bool(form["failures"]),
                before=cursor.get("before"), after=cursor.get("after"), limit=cursor.get("limit", AUDIT_PAGE),
            ))  # fmt: skip
        except ValueError as exc:  # AuditError included
            raise fail(
                400, str(exc) if isinstance(exc, audit.AuditError) else "before, after, limit: event numbers"
            ) from None
        events = with_study_labels(archive, [asdict(e) for e in page.events])
        # The cursors of the pages either side (the filter goes with them); a page past the
        # end of the trail leads back to the newest ({}).
        older = {"before": events[-1]["id"]} if events and page.older else None
        newer = {"after": events[0]["id"]} if events and page.newer else None
        return {
            "events": events,
            "filter": form,
            "older": older,
            "newer": {} if not events and (page.older or page.newer) else newer,
            "event_types": audit.EVENTS,
            "actions": audit.ACTIONS,
        }

    @app.get("/admin/audit")
    @guard("admin")
    def audit_page():
        return render(
            "audit.tpl", user=guard.user(), csrf=guard.csrf_token(), section="audit", data=audit_page_data(),
            user_names=[u.name for u in archive.users.all()],
        )  # fmt: skip

    @app.get("/api/audit")
    @guard("admin")
    def audit_api() -> dict:
        return audit_page_data()

    @app.get("/api/users")
    @guard("admin")
    def users_api() -> dict:
        return {"users": users()}

    def changed(action: str, name: str, detail: str) -> dict:
        guard.audit(audit.SECURITY_ALERT, action=action, detail=f"user {name}: {detail}")
        return {"ok": True, "users": users()}

    @app.post("/api/users")
    @guard("admin")
    def add_user() -> dict:
        form = request.forms
        name, role = form.getunicode("name", ""), form.getunicode("role", "viewer")
        try:
            account = archive.users.add(name, form.getunicode("password", ""), role)
        except UserError as exc:
            raise fail(400, str(exc)) from None
        return changed("C", account.name, f"added as {account.role}")

    @app.post("/api/users/<name>/password")
    @guard("admin")
    def set_password(name: str) -> dict:
        try:
            found = archive.users.set_password(name, request.forms.getunicode("password", ""))
        except UserError as exc:
            raise fail(400, str(exc)) from None
        if not found:
            raise fail(404, "no such user")
        return changed("U", name, "password changed")

    @app.post("/api/users/<name>/unlock")
    @guard("admin")
    def unlock_user(name: str) -> dict:
        """Lift the wait that wrong passwords from many addresses put on a user's logins."""
        if archive.users.get(name) is None:
            raise fail(404, "no such user")
        backoff.unlock(name)
        return changed("U", name, "login wait lifted")

    @app.delete("/api/users/<name>")
    @guard("admin")
    def remove_user(name: str) -> dict:
        try:
            found = archive.users.remove(name)
        except UserError as exc:
            raise fail(400, str(exc)) from None
        if not found:
            raise fail(404, "no such user")
        return changed("D", name, "removed")
