"""The study browser: the list (with search and filters), one study's page, and their JSON twins."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

import bottle
from bottle import request

from appliance import ohif
from appliance.archive import Archive, BrowseError, StudyFilter, audit
from appliance.imaging import ImagingOptions
from appliance.imaging.videos import VideoLibrary
from appliance.web import contents, frames
from appliance.web.auth import Guard, fail
from appliance.web.display import plural, today
from appliance.web.templates import render

PAGE_SIZE = 50
DATE_CHOICES = (("", "Any date"), ("today", "Today"), ("7d", "Last 7 days"), ("range", "Date range"))


def _iso_to_dicom(value: str) -> str:
    """An HTML date input's 2026-12-01 as DICOM's 20261201 ('' stays '')."""
    return value.replace("-", "") if value else ""


def parse_filter(query: bottle.FormsDict) -> tuple[StudyFilter, dict[str, Any]]:
    """The study list filter from the URL's query, and the values to show in the form."""
    get = query.getunicode
    when, page, limit = get("date", "") or "", get("page", "1") or "1", get("limit", str(PAGE_SIZE)) or ""
    now = today()
    if when == "today":
        date_from = date_to = now.strftime("%Y%m%d")
    elif when == "7d":
        date_from, date_to = (now - timedelta(days=6)).strftime("%Y%m%d"), now.strftime("%Y%m%d")
    elif when == "range":
        date_from, date_to = _iso_to_dicom(get("from", "") or ""), _iso_to_dicom(get("to", "") or "")
    elif when == "":
        date_from = date_to = ""
    else:
        raise fail(400, f"date: one of {', '.join(c for c, _ in DATE_CHOICES if c)}")
    # Bounded before int(): a 5,000-digit page is past Python's int() limit, a 20-digit one
    # past SQLite's OFFSET.
    if not (page.isdecimal() and limit.isdecimal() and len(page) <= 6 and len(limit) <= 6 and int(page) >= 1):
        raise fail(400, "page, limit: numbers from 1 to 999999")
    sort = get("sort", "date") or "date"
    try:
        study_filter = StudyFilter(
            text=get("q", "") or "",
            date_from=date_from,
            date_to=date_to,
            modality=get("modality", "") or "",
            sort=sort,
            descending=(get("order", "") or ("desc" if sort in ("date", "received", "images") else "asc")) == "desc",
            offset=(int(page) - 1) * int(limit),
            limit=int(limit),
        )
    except BrowseError as exc:
        raise fail(400, str(exc)) from None
    form = {
        "q": study_filter.text, "date": when, "from": get("from", "") or "", "to": get("to", "") or "",
        "modality": study_filter.modality, "sort": sort, "order": "desc" if study_filter.descending else "asc",
        "page": int(page), "limit": int(limit) if int(limit) != PAGE_SIZE else "",
    }  # fmt: skip
    return study_filter, form


def with_study_labels(archive: Archive, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events, changes or jobs that name a study, each with its patient, description and date
    (``study``: None when it names none, or one no longer in the archive)."""
    labels = archive.study_labels(item["study_uid"] for item in items)
    return [{**item, "study": asdict(labels[uid]) if (uid := item["study_uid"]) in labels else None} for item in items]


def install(app: bottle.Bottle, archive: Archive, guard: Guard, videos: VideoLibrary, imaging: ImagingOptions) -> None:
    def study_list() -> dict[str, Any]:
        study_filter, form = parse_filter(request.query)
        rows, more = archive.list_studies(study_filter)
        present = archive.modalities()
        chosen = study_filter.modality.upper()
        return {
            "studies": [r.as_json() for r in rows],
            "page": form["page"],
            "more": more,
            "filter": form,
            "last_change": archive.last_change(),
            "total_studies": archive.counts()["studies"],
            # the filter's choices: what the archive holds (and the one asked for, even if none has it)
            "modalities": present if not chosen or chosen in present else sorted([*present, chosen]),
        }

    @app.get("/")
    @guard
    def studies_page():
        return render(
            "studies.tpl", user=guard.user(), csrf=guard.csrf_token(), section="studies",
            list=study_list(), date_choices=DATE_CHOICES,
        )  # fmt: skip

    @app.get("/api/studies")
    @guard
    def studies_api() -> dict:
        return study_list()

    @app.get("/api/changes")
    @guard
    def changes_api() -> dict:
        """The change log's head (and a study's image count, when asked): cheap to poll, so
        pages refresh only when something changed."""
        head: dict[str, Any] = {"last_change": archive.last_change()}
        study_uid = request.query.getunicode("study")
        if study_uid:
            head["study_instances"] = archive.study_instance_count(study_uid)
        return head

    def detail(study_uid: str) -> dict[str, Any]:
        found = archive.study_detail(study_uid)
        if found is None:
            raise fail(404, "no such study")
        guard.audit(
            audit.INSTANCES_ACCESSED,
            study_uid=study_uid,
            detail=plural(found.study.num_instances, "instance") + " viewed",
        )
        body = {**found.as_json(), "last_change": archive.last_change()}
        body["orders"] = archive.worklist.for_study(study_uid, found.study.accession)
        body["performed"] = archive.performed.for_study(study_uid, [order["id"] for order in body["orders"]])
        contents.describe(body, archive, videos)
        return body

    @app.get("/studies/<study_uid>")
    @guard
    def study_page(study_uid: str):
        user = guard.user()
        manage = {  # the admin part: the patient's other records and studies (to fix and merge)
            "other_records": archive.same_id_patients(study_uid),
            "patient_studies": len(archive.studies_of_patient(study_uid)),
        } if user.is_admin else {}  # fmt: skip
        return render(
            "study.tpl", user=user, csrf=guard.csrf_token(), section="studies", detail=detail(study_uid),
            ohif=ohif.PREFIX if ohif.installed(archive.data_dir) else "", **manage,
        )  # fmt: skip

    @app.get("/studies/<study_uid>/view")
    @guard
    def view_page(study_uid: str):
        """The viewer, full window: its own address (bookmarkable), the study's image series in a
        strip, the patient's other studies to compare with."""
        found = detail(study_uid)
        priors = [row.as_json() for row in archive.patient_studies(study_uid) if row.study_uid != study_uid]
        # The Print link prints the series of the address the page was opened at (the first shown).
        shown = request.query.getunicode("series") or ""
        # The first viewport's series (workspace.js: the address's first, or the strip's first):
        # its facts and first frame are asked for with the page, not after its scripts.
        first = shown or next((se["series_uid"] for se in found["series"] if se["front"]["kind"] == "image"), "")
        return render("view.tpl", user=guard.user(), csrf=guard.csrf_token(), detail=found, priors=priors,
                      print_series=shown, preloads=frames.first_fetches(archive, first, imaging) if first else [])  # fmt: skip

    @app.get("/api/studies/<study_uid>")
    @guard
    def study_api(study_uid: str) -> dict:
        return detail(study_uid)
