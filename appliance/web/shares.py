"""Making and revoking share links (the study page's "Share with a colleague"), and the study
page's "Download anonymised".  What a link opens is ``shared.py``'s.

A viewer or an admin makes a link; the token is shown once (only its digest is kept).  Every
making and revoking is audited.
"""

from __future__ import annotations

import secrets
from typing import Any

import bottle
from bottle import request, response

from appliance.archive import Archive, ShareError, ShareLink, audit
from appliance.config import Settings
from appliance.deidentify import Plan
from appliance.web.anonymised import anonymised_zip
from appliance.web.auth import Guard, fail
from appliance.web.display import plural

DAY = 86400.0


def share_url(token: str) -> str:
    """The link's address: from the request's own scheme and host, so it is what the maker
    reached the box by (the clinic's public name when made through the router)."""
    return f"{request.urlparts.scheme}://{request.urlparts.netloc}/share/{token}"


def _days(text: str, default: int, most: int) -> float:
    text = (text or "").strip()
    if not text:
        return float(default)
    try:
        days = float(text)
    except ValueError:
        raise fail(400, f"valid for: a number of days from 1 to {most}") from None
    if not 1 / 24 <= days <= most:  # an hour at least: a shorter link is a typo
        raise fail(400, f"valid for: a number of days from 1 to {most}")
    return days


def install(app: bottle.Bottle, archive: Archive, guard: Guard, settings: Settings) -> None:
    default_days, max_days = int(settings.share_days), int(settings.share_max_days)

    def study_or_404(study_uid: str) -> None:
        if archive.study_instance_count(study_uid) is None:
            raise fail(404, "no such study")

    def listing(study_uid: str) -> dict[str, Any]:
        return {
            "shares": [link.as_json() for link in archive.shares.for_study(study_uid)],
            "default_days": default_days,
            "max_days": max_days,
        }

    @app.get("/api/studies/<study_uid>/shares")
    @guard
    def shares_api(study_uid: str) -> dict[str, Any]:
        study_or_404(study_uid)
        return listing(study_uid)

    @app.post("/api/studies/<study_uid>/shares")
    @guard
    def make_share(study_uid: str) -> dict[str, Any]:
        study_or_404(study_uid)
        form = request.forms
        seconds = _days(form.getunicode("days", "") or "", default_days, max_days) * DAY
        deidentify = (form.getunicode("deidentify", "") or "") in ("1", "on", "yes", "true")
        try:
            token, link = archive.shares.create(
                study_uid, guard.user().name, seconds, form.getunicode("pin", "") or "", deidentify
            )
        except ShareError as exc:
            raise fail(400, str(exc)) from None
        guard.audit(audit.EXPORT, action="C", study_uid=study_uid, detail=f"share link #{link.id} made: {_terms(link)}")
        response.status = 201
        return {"url": share_url(token), "share": link.as_json(), **listing(study_uid)}

    @app.post("/api/shares/<number>/revoke")
    @guard
    def revoke_share(number: str) -> dict[str, Any]:
        link = archive.shares.get(int(number)) if number.isdecimal() and len(number) <= 12 else None
        if link is None:
            raise fail(404, "no such share link")
        share_id = link.id
        revoked = archive.shares.revoke(share_id, guard.user().name)
        guard.audit(audit.EXPORT, action="D", study_uid=link.study_uid, detail=f"share link #{share_id} revoked")
        return {"share": revoked.as_json() if revoked else None, **listing(link.study_uid)}

    @app.get("/api/studies/<study_uid>/anonymised.zip")
    @guard
    def anonymised(study_uid: str):
        files = archive.media_files(study_uid)
        if not files:
            raise fail(404, "no such study")
        guard.audit(audit.EXPORT, study_uid=study_uid, detail=f"de-identified ZIP, {plural(len(files), 'instance')}")
        response.content_type = "application/zip"
        response.set_header("Content-Disposition", 'attachment; filename="lightbox-anonymised.zip"')
        return anonymised_zip(archive, files, Plan(secrets.token_bytes(16)))  # new UIDs and dates each time


def _terms(link: ShareLink) -> str:
    days = (link.expires_at - link.created_at) / DAY
    return ", ".join(
        [f"{days:g} days"] + (["PIN"] if link.needs_pin else []) + (["de-identified"] if link.deidentify else [])
    )
