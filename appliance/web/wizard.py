"""The first-run wizard: after the first administrator, the rest of the set-up in plain words,
one step a page, each skippable and each found again in the admin pages (``Step.later``).

A step is done when what it sets up is there (a clinic name, a time zone, an image received
from a device, a backup set up, HTTPS only) or when an admin saved it (the AE title, which may
stay as it is; the HTTPS choices); skipped when an admin passed it over.  ``/wizard`` leads to
the first step neither done nor skipped; ``GET /api/wizard`` is the JSON twin; ``POST
/api/wizard/STEP`` saves a step (``state=skipped`` passes it over) and answers with the page to
go to next."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import bottle
from bottle import request

from appliance.archive import Archive, time_zones
from appliance.backup.state import BackupState
from appliance.config import Settings
from appliance.web import connect, https, site
from appliance.web.auth import Guard, fail, see_other
from appliance.web.backup import setup_form_values
from appliance.web.templates import render


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    later: str  # where an admin finds it again


STEPS = (
    Step("clinic", "The clinic's name", "/admin#site-h"),
    Step("time-zone", "Time zone", "/admin#site-h"),
    Step("ae-title", "Lightbox's AE title", "/admin#site-h"),
    Step("modality", "Connect your first modality", "/admin/connect"),
    Step("backup", "Backup", "/admin/backup"),
    Step("https", "Secure connections (HTTPS)", "/admin#https-h"),
)
BY_NAME = {s.name: s for s in STEPS}
SITE_FIELD = {"clinic": "clinic_name", "time-zone": "time_zone", "ae-title": "aet"}
MARKED = ("ae-title", "https")  # done once saved (the setting's AE title may well stay); the others by what they set up


def step_states(archive: Archive) -> dict[str, str]:
    """Each step's state: "done", "skipped" or "" (still to do)."""
    saved = archive.site.get()
    facts = {
        "clinic": bool(saved.clinic_name),
        "time-zone": bool(saved.time_zone),
        "modality": any(d.images_received for d in archive.devices.all()),
        "backup": BackupState(archive.data_dir).configured,
        "https": archive.site.https().only,
    }
    marks = archive.site.wizard_steps()
    return {s.name: "done" if facts.get(s.name) else marks.get(s.name, "") for s in STEPS}


def next_page(states: dict[str, str], after: str | None = None) -> str:
    """The first step still to do (after ``after``, when given), else the summary."""
    names = [s.name for s in STEPS]
    start = names.index(after) + 1 if after else 0
    return next((f"/wizard/{n}" for n in names[start:] if not states[n]), "/wizard/done")


def install(app: bottle.Bottle, archive: Archive, guard: Guard, settings: Settings, door: https.HttpsDoor) -> None:
    def overview() -> dict[str, Any]:
        states = step_states(archive)
        return {
            "steps": [{**asdict(s), "state": states[s.name], "url": f"/wizard/{s.name}"} for s in STEPS],
            "next": next_page(states),
        }

    @app.get("/wizard")
    @guard("admin")
    def wizard_start():
        return see_other(next_page(step_states(archive)))

    @app.get("/api/wizard")
    @guard("admin")
    def wizard_api() -> dict:
        return overview()

    @app.get("/wizard/<name>")
    @guard("admin")
    def wizard_page(name: str):
        if name != "done" and name not in BY_NAME:
            raise fail(404, f"no wizard step {name!r}")
        values: dict[str, Any] = {}
        if name in SITE_FIELD:
            values = {"site": site.site_json(archive, settings.aet)} | (
                {"time_zones": time_zones()} if name == "time-zone" else {}
            )
        elif name == "modality":
            values = {"values": connect.connection_values(archive, settings)}
        elif name == "backup":
            with BackupState(archive.data_dir, settings.backup_checksums) as state:
                values = {"configured": state.configured, **setup_form_values(settings, state)}
        elif name == "https":
            values = {"https": https.facts(archive, door, "/wizard/https")}
        return render(
            "wizard.tpl", user=guard.user(), csrf=guard.csrf_token(), section="admin", step=name, steps=STEPS,
            states=step_states(archive), **values,
        )  # fmt: skip

    @app.post("/api/wizard/<name>")
    @guard("admin")
    def wizard_save(name: str) -> dict:
        if name not in BY_NAME:
            raise fail(404, f"no wizard step {name!r}")
        skipped = request.forms.getunicode("state", "") == "skipped"
        if name in SITE_FIELD and not skipped:
            field = SITE_FIELD[name]
            site.save(archive, guard, {field: request.forms.getunicode(field, "")}, settings.aet)
        elif name == "https" and not skipped:
            https.save(archive, guard, door)
        if step_states(archive)[name] != "done":
            archive.site.mark_step(name, "done" if name in MARKED and not skipped else "skipped")
        return {"ok": True, "next": next_page(step_states(archive), after=name)}
