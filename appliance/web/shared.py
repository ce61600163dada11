"""What a share link opens, to someone without an account: ``/share/<token>``.

The page asks for the PIN if the link has one, then gives the browser a share cookie and shows
the study's series, the viewer and the downloads.  The cookie is a capability for that one study,
read-only: ``Guard.share_scope`` (``scope`` here) lets it through only GET/HEAD requests of the
routes in ``SHAREABLE``, and only for UIDs of the shared study; everything else of the archive
asks for a login as before.  Every open, wrong PIN, download and refusal is audited with the
address.

A de-identified link serves what carries no text about the patient as it is (pixels), the
viewer's facts with the patient's and study's text removed and dates shifted, and a
de-identified ZIP; it does not serve documents, reports, overlays or the original files.  Its
pages and answers name the study, series and instances by the new UIDs of its ZIP
(``aliases.py``), and requests by the archive's own UIDs are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any, NoReturn

import bottle
from bottle import request, response

from appliance.archive import Archive, ShareLink, audit, kinds
from appliance.deidentify import Plan, left_out
from appliance.documents import sr
from appliance.imaging import ImagingOptions, render_frame
from appliance.imaging.videos import VideoLibrary
from appliance.web import contents, frames
from appliance.web.aliases import Aliases
from appliance.web.anonymised import anonymised_zip
from appliance.web.auth import SAFE_METHODS, SHARED_BY, Auth, Guard, client_address, fail, https, public, see_other
from appliance.web.backoff import LoginBackoff
from appliance.web.display import plural
from appliance.web.documents import Readable
from appliance.web.downloads import zip_stream
from appliance.web.redaction import REDACT, aliased, deidentified_study, may_show_burned_in, no_states
from appliance.web.templates import render

COOKIE = "lightbox_share"
COOKIE_MAX_S = 12 * 3600  # the browser asks again (the PIN, if any) after this
MAX_ALIASED_LINKS = 32  # de-identified links whose UID maps are kept
# The routes a share cookie may read, and what their UID names: study, series or instance.
SHAREABLE = {
    "/api/series/<series_uid>/viewer": "series",
    "/api/series/<series_uid>/geometry": "series",
    "/api/series/<series_uid>/thumbnail": "series",
    "/api/series/<series_uid>/presentation-states": "series",
    "/api/series/<series_uid>/archive.zip": "series",
    "/api/studies/<study_uid>/archive.zip": "study",
    "/api/instances/<sop_uid>/frames/<n>/rendered": "instance",
    "/api/instances/<sop_uid>/frames/<n>/raw": "instance",
    "/api/instances/<sop_uid>/frames/<n>/overlay": "instance",
    "/api/instances/<sop_uid>/animation": "instance",
    "/api/instances/<sop_uid>/video": "instance",
    "/api/instances/<sop_uid>/video.mp4": "instance",
    "/api/instances/<sop_uid>/poster": "instance",
    "/api/instances/<sop_uid>/document": "instance",
    "/api/presentation-states/<sop_uid>": "instance",
}
# Not through a de-identified link: text about the patient, or the original files.
NOT_DEIDENTIFIED = frozenset({
    "/api/series/<series_uid>/archive.zip", "/api/studies/<study_uid>/archive.zip",
    "/api/instances/<sop_uid>/frames/<n>/overlay", "/api/instances/<sop_uid>/document",
    "/api/presentation-states/<sop_uid>",
})  # fmt: skip
OVERLAID = frozenset({"/api/instances/<sop_uid>/frames/<n>/rendered", "/api/instances/<sop_uid>/animation"})
STATES = {
    "revoked": "This link was revoked by the clinic.",
    "expired": "This link has expired.",
    "locked": "This link is locked after too many wrong PINs. Ask the clinic for a new one.",
}


def plan_of(link: ShareLink) -> Plan:
    return Plan(bytes.fromhex(link.secret))


class ShareDoor:
    """The share cookie (``<id>.<HMAC>`` with a key of this process: a restart asks again)
    and the per-address wait on wrong PINs."""

    def __init__(self, archive: Archive, auth: Auth, imaging: ImagingOptions) -> None:
        self.archive = archive
        self.auth = auth
        self.imaging = imaging
        self.backoff = LoginBackoff()
        self._key = secrets.token_bytes(32)
        self._aliases: dict[int, tuple[int, Aliases]] = {}  # link id -> (change seq, its aliases)

    def aliases(self, link: ShareLink) -> Aliases:
        """A de-identified link's UIDs, made again when the archive changed."""
        seq = self.archive.last_change()
        kept = self._aliases.get(link.id)
        if kept is None or kept[0] != seq:
            if len(self._aliases) >= MAX_ALIASED_LINKS:
                self._aliases.clear()
            kept = self._aliases[link.id] = (seq, Aliases.of(self.archive, link.study_uid, plan_of(link)))
        return kept[1]

    def _signature(self, share_id: int) -> str:
        return hmac.new(self._key, str(share_id).encode(), hashlib.sha256).hexdigest()

    def admit(self, link: ShareLink) -> None:
        max_age = int(max(1, min(COOKIE_MAX_S, link.expires_at - time.time())))
        response.set_cookie(COOKIE, f"{link.id}.{self._signature(link.id)}", path="/", httponly=True,
                            samesite="lax", secure=https(), max_age=max_age)  # fmt: skip

    def granted(self) -> ShareLink | None:
        """The live link this request's share cookie names, or None."""
        share_id, _, signature = (request.get_cookie(COOKIE) or "").partition(".")
        if not share_id.isdecimal() or len(share_id) > 12:
            return None
        if not hmac.compare_digest(signature.encode(), self._signature(int(share_id)).encode()):
            return None
        link = self.archive.shares.get(int(share_id))
        return link if link is not None and link.state() == "active" else None

    def scope(self, kwargs: dict[str, Any]) -> Callable[[Any], Any] | None:
        """``Guard.share_scope``: None (the usual rules apply), or what to do with the answer."""
        if request.method not in SAFE_METHODS or not request.get_cookie(COOKIE) or self.auth.current() is not None:
            return None
        rule = request.route.rule
        kind = SHAREABLE.get(rule)
        link = self.granted() if kind else None
        if link is None or (link.deidentify and rule in NOT_DEIDENTIFIED):
            return None
        aliases = self.aliases(link) if link.deidentify else None
        if aliases is not None:  # the link's own UIDs in, the archive's to the route (the same dict)
            for key in ("study_uid", "series_uid", "sop_uid"):
                if key in kwargs:
                    kwargs[key] = aliases.old.get(kwargs[key], "")
                    if not kwargs[key]:
                        refuse(self.archive, link, "a UID this de-identified link does not give", 404)
        if self._study_of(kind or "", kwargs) != link.study_uid:
            refuse(self.archive, link, "a resource of another study", 404)
        request.environ[SHARED_BY] = f"share link #{link.id}"
        if aliases is None:
            return lambda answer: answer
        if rule == "/api/series/<series_uid>/presentation-states":
            return no_states
        if rule in OVERLAID:
            request.query.replace("overlays", "0")  # overlay planes can carry text (PS3.15: X)
        if rule == "/api/series/<series_uid>/thumbnail":
            return lambda answer: self._plain_thumbnail(answer, kwargs["series_uid"])
        redact = REDACT.get(rule)
        return lambda answer: aliased(redact(answer, plan_of(link)) if redact else answer, aliases)

    def _plain_thumbnail(self, answer: Any, series_uid: str) -> Any:
        """The series' thumbnail made again without its overlay planes (the kept one has them)."""
        representative = self.archive.middle_instance(series_uid)
        if getattr(answer, "status_code", 0) != 200 or representative is None or representative.kind != kinds.IMAGE:
            return answer
        side = self.imaging.thumbnail_size
        picture = render_frame(self.archive.file_path(representative.file_key), 1, size=(side, side),
                               fmt="jpeg", quality=80, overlays=False, options=self.imaging)  # fmt: skip
        return bottle.HTTPResponse(picture.data, 200, {"Content-Type": picture.media_type, "Cache-Control": "no-store"})

    def _study_of(self, kind: str, kwargs: dict[str, Any]) -> str | None:
        if kind == "study":
            return kwargs.get("study_uid")
        if kind == "series":
            return self.archive.study_of_series(kwargs.get("series_uid", ""))
        entry = self.archive.instance(kwargs.get("sop_uid", ""))
        return self.archive.study_of_series(entry.series_uid) if entry is not None else None


def record(archive: Archive, link: ShareLink | None, event: str, detail: str, outcome: int = audit.SUCCESS) -> None:
    archive.audit.record(
        event,
        f"share link #{link.id}" if link else "share link",
        client_address(),
        outcome=outcome,
        study_uid=link.study_uid if link else "",
        detail=detail,
    )


def refuse(archive: Archive, link: ShareLink | None, why: str, status: int) -> NoReturn:
    record(archive, link, audit.SECURITY_ALERT, f"share link refused: {why}", audit.MINOR_FAILURE)
    raise fail(status, "This link does not open that." if status == 404 else STATES.get(why, why))


def install(app: bottle.Bottle, archive: Archive, guard: Guard, videos: VideoLibrary, imaging: ImagingOptions) -> None:
    door = ShareDoor(archive, guard.auth, imaging)
    guard.share_scope = door.scope

    def live(token: str) -> ShareLink:
        link = archive.shares.by_token(token)
        if link is None:
            refuse(archive, None, "an unknown link", 404)
        if (state := link.state()) != "active":
            refuse(archive, link, state, 410)
        return link

    def admitted(token: str) -> ShareLink:
        link = live(token)
        granted = door.granted()
        if granted is None or granted.id != link.id:
            if link.needs_pin:
                raise bottle.HTTPResponse(status=303, Location=f"/share/{token}")
            door.admit(link)
        return link

    def detail_of(link: ShareLink) -> dict[str, Any]:
        found = archive.study_detail(link.study_uid)
        if found is None:
            raise fail(404, "This study is no longer in the archive.")
        body = found.as_json()
        if link.deidentify:
            body["study"] = deidentified_study(body["study"], plan_of(link))
            body["series"] = [
                {**se, "description": "", "manufacturer": "", "model_name": "", "series_date": ""}
                for se in body["series"]
                if not all(left_out(i["sop_class_uid"]) for i in se["instances"])
            ]
        contents.describe(body, archive, videos)
        return body

    def pin_page(token: str, status: int, message: str = "") -> bottle.HTTPResponse:
        body = render("share_pin.tpl", token=token, message=message)
        return bottle.HTTPResponse(body, status, **{"Content-Type": "text/html; charset=UTF-8"})

    @app.get("/share/<token>")
    @public
    def share_page(token: str):
        link = live(token)
        granted = door.granted()
        if link.needs_pin and (granted is None or granted.id != link.id):
            return pin_page(token, 200)
        door.admit(link)
        archive.shares.count_use(link.id)
        found = detail_of(link)
        record(archive, link, audit.INSTANCES_ACCESSED, "share link opened")
        page = render(
            "share.tpl", token=token, link=link.as_json(), detail=found,
            burned_in={se["series_uid"] for se in found["series"] if may_show_burned_in(se)} if link.deidentify else set(),
        )  # fmt: skip
        return door.aliases(link).text(page) if link.deidentify else page

    @app.post("/share/<token>")
    @public
    def share_pin(token: str):
        link = live(token)
        if request.get_header("Origin", f"{request.urlparts.scheme}://{request.urlparts.netloc}") != (
            f"{request.urlparts.scheme}://{request.urlparts.netloc}"
        ):  # not Auth.check_origin: its log line and audit event would carry the path, the token
            refuse(archive, link, "a PIN sent from another site", 403)
        keys = door.backoff.keys(client_address(), f"share-{link.id}")
        if (wait := door.backoff.wait_left(keys)) > 0:
            record(archive, link, audit.USER_AUTHENTICATION, "share link PIN: too many tries", audit.MINOR_FAILURE)
            answer = pin_page(token, 429, f"Too many wrong PINs. Try again in {int(wait) + 1} seconds.")
            answer.set_header("Retry-After", str(int(wait) + 1))
            return answer
        if not archive.shares.check_pin(link.id, request.forms.getunicode("pin", "") or ""):
            door.backoff.failed(keys)
            record(archive, link, audit.USER_AUTHENTICATION, "share link PIN wrong", audit.MINOR_FAILURE)
            if archive.shares.get(link.id).state() == "locked":  # type: ignore[union-attr]
                return pin_page(token, 410, STATES["locked"])
            return pin_page(token, 403, "Wrong PIN.")
        door.backoff.succeeded(keys)
        door.admit(link)
        return see_other(f"/share/{token}")  # with the cookie just set

    @app.get("/share/<token>/view")
    @public
    def share_view(token: str):
        link = admitted(token)
        found = detail_of(link)
        first = request.query.getunicode("series") or ""
        if first and link.deidentify:
            first = door.aliases(link).old.get(first, "-")  # the link's UID of the series: no other
        first = first or next((se["series_uid"] for se in found["series"] if se["front"]["kind"] == kinds.IMAGE), "")
        if first and archive.study_of_series(first) != link.study_uid:
            refuse(archive, link, "a series of another study", 404)
        page = render(
            "view.tpl", user=None, csrf="", detail=found, priors=[], print_series="", back_url=f"/share/{token}",
            shared=True, preloads=frames.first_fetches(archive, first, imaging) if first else [],
        )  # fmt: skip
        return door.aliases(link).text(page) if link.deidentify else page

    @app.get("/share/<token>/report/<sop_uid>")
    @public
    def share_report(token: str, sop_uid: str):
        """A structured report of the study (not through a de-identified link: it is text)."""
        link = admitted(token)
        entry = archive.instance(sop_uid)
        if link.deidentify or entry is None or entry.kind != kinds.REPORT:
            raise fail(404, "This link does not open that.")
        series = archive.series_entry(entry.series_uid)
        if series is None or series.study.get("uid") != link.study_uid:
            refuse(archive, link, "a report of another study", 404)
        try:
            found = sr.read(archive.file_path(entry.file_key))
        except sr.ReportError as exc:
            raise fail(422, str(exc)) from None
        record(archive, link, audit.INSTANCES_ACCESSED, "share link: structured report read")
        return render("report.tpl", report=found, sop_uid=sop_uid, study=series.study, patient=series.patient,
                      readable=Readable)  # fmt: skip

    @app.get("/share/<token>/study.zip")
    @public
    def share_zip(token: str):
        link = admitted(token)
        files = archive.media_files(link.study_uid)
        if not files:
            raise fail(404, "This study is no longer in the archive.")
        how = "de-identified ZIP" if link.deidentify else "ZIP"
        record(archive, link, audit.EXPORT, f"share link download: {how}, {plural(len(files), 'instance')}")
        response.content_type = "application/zip"
        response.set_header("Content-Disposition", 'attachment; filename="shared-study.zip"')
        return anonymised_zip(archive, files, plan_of(link)) if link.deidentify else zip_stream(archive, files)
