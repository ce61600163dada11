"""This box's identity for people and peers: the clinic's name, its time zone, Lightbox's AE
title.  The admin page's "This box" form and the wizard's first steps save through ``save``;
``GET /api/site`` is the JSON twin.  Every change is audited and holds at once: the clinic's
name in every page's header, the zone in every time shown and the nightly backup, the AE title
from the next association on (``archive.site``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bottle

from appliance.archive import Archive, SiteError, audit, time_zones
from appliance.web import display, templates
from appliance.web.auth import Guard, fail

FIELDS = ("clinic_name", "time_zone", "aet")


def site_json(archive: Archive, default_aet: str) -> dict[str, Any]:
    site = archive.site.get()
    return {
        "clinic_name": site.clinic_name,
        "time_zone": site.time_zone,
        "aet": archive.site.ae_title(default_aet),
        "aet_setting": default_aet,
        "time_zones": time_zones(),
    }


def show(archive: Archive) -> None:
    """Pages and times in this process follow the saved name and zone."""
    templates.PAGE["clinic_name"] = archive.site.get().clinic_name
    display.use_zone(archive.site.zone())


def save(archive: Archive, guard: Guard, form: Mapping[str, str], default_aet: str) -> list[str]:
    """Keep the fields ``form`` holds (the others stay); the names of those that changed."""
    before, changed = archive.site.get(), []
    try:
        if "clinic_name" in form and (name := archive.site.set_clinic_name(form["clinic_name"])) != before.clinic_name:
            changed.append(f"clinic name {name!r}")
        if "time_zone" in form and (zone := archive.site.set_time_zone(form["time_zone"])) != before.time_zone:
            changed.append(f"time zone {zone or 'of the system'}")
        if "aet" in form:
            wanted = form["aet"].strip()
            aet = archive.site.set_aet("" if wanted == default_aet else wanted)  # the setting's: follow it
            if aet != before.aet:
                changed.append(f"AE title {aet or default_aet}")
    except SiteError as exc:
        raise fail(400, str(exc)) from None
    show(archive)
    if changed:
        guard.audit(audit.APPLICATION_ACTIVITY, action="U", detail="site: " + ", ".join(changed))
    return changed


def install(app: bottle.Bottle, archive: Archive, guard: Guard, default_aet: str) -> None:
    show(archive)

    @app.get("/api/site")
    @guard("admin")
    def site_api() -> dict:
        return site_json(archive, default_aet)

    @app.post("/api/site")
    @guard("admin")
    def save_site() -> dict:
        form = {k: bottle.request.forms.getunicode(k, "") for k in FIELDS if k in bottle.request.forms}
        return {"ok": True, "changed": save(archive, guard, form, default_aet), **site_json(archive, default_aet)}
