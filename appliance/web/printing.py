"""The print page: chosen images of one series, 1, 2, 4 or 6 a sheet, under the clinic's name,
the patient (or animal and owner) and the study, with a presentation state's annotations drawn
over each image and its measurement texts listed under it (webui/static/print.js draws them).

    GET /studies/<study_uid>/print?series=<uid>&images=<sop[:frame]>,...|image=<n>
        &per_page=1|2|4|6&window=<center,width>&state=<sop>|none

No ``images``: every image of the series (each frame of a multi-frame image), at most
``MAX_IMAGES``; ``image=<n>``: the n-th of them alone (the image the user is looking at).
No ``state``: the newest presentation state that shows the series, if any.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import bottle
from bottle import request

from appliance.archive import Archive, audit
from appliance.presentation import saving
from appliance.web.auth import Guard, fail
from appliance.web.templates import render

PER_PAGE = (1, 2, 4, 6)
MAX_IMAGES = 60  # a print of a whole CT series is not what anyone wants on paper
PICTURE_SIDE = 1536  # the rendered frame's fit box: sharp at 1 a page, small enough for 60
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_NUMBER = r"-?[0-9]+(\.[0-9]+)?"
_WINDOW = re.compile(f"{_NUMBER},{_NUMBER}")


@dataclass(frozen=True)
class Picture:
    sop_uid: str
    frame: int  # 1-based
    rows: int
    columns: int
    position: int  # 1-based, among every picture of the series


def install(app: bottle.Bottle, archive: Archive, guard: Guard) -> None:
    @app.get("/studies/<study_uid>/print")
    @guard
    def print_page(study_uid: str) -> str:
        found = archive.study_detail(study_uid)
        if found is None:
            raise fail(404, "no such study")
        image_series = [s for s in found.as_json()["series"] if s["kind"] == "image"]
        series = _series(image_series, request.query.getunicode("series") or "")
        everything = _pictures(series)
        chosen = _chosen(everything, request.query)
        per_page = _per_page(request.query.get("per_page", "4"))
        window = request.query.get("window", "")
        if window and not _WINDOW.fullmatch(window):
            raise fail(400, "window must be center,width")
        states = saving.listing(archive, series["series_uid"]) or []
        state = _state(request.query.get("state", ""), states)
        guard.audit(audit.INSTANCES_ACCESSED, study_uid=study_uid,
                    detail=f"{len(chosen)} image{'s' if len(chosen) != 1 else ''} printed")  # fmt: skip
        return render(
            "print.tpl", user=guard.user(), study=found.study.as_json(), series=series, all_series=image_series,
            sheets=[chosen[i : i + per_page] for i in range(0, len(chosen), per_page)], per_page=per_page,
            total=len(everything), bounded=len(everything) > MAX_IMAGES and not request.query.get("images"),
            window=window, state=state, states=states, image=request.query.get("image", ""), side=PICTURE_SIDE,
        )  # fmt: skip


def _series(images: list[dict[str, Any]], asked: str) -> dict[str, Any]:
    for s in images:
        if s["series_uid"] == asked or not asked:
            return s
    raise fail(404, "no such image series in this study")


def _pictures(series: dict[str, Any]) -> list[Picture]:
    """Every picture of the series in the viewer's order: instances, then their frames."""
    pictures: list[Picture] = []
    for instance in series["instances"]:
        if instance["kind"] != "image":
            continue
        for frame in range(1, (instance["number_of_frames"] or 1) + 1):
            pictures.append(Picture(instance["sop_uid"], frame, instance["rows"] or 0, instance["columns"] or 0,
                                    len(pictures) + 1))  # fmt: skip
    return pictures


def _chosen(pictures: list[Picture], query: bottle.FormsDict) -> list[Picture]:
    if query.get("image"):
        position = query.get("image")
        if not position.isdigit() or not 1 <= int(position) <= len(pictures):
            raise fail(400, f"image must be a number from 1 to {len(pictures)}")
        return [pictures[int(position) - 1]]
    if not query.get("images"):
        return pictures[:MAX_IMAGES]
    by_key = {(p.sop_uid, p.frame): p for p in pictures}
    asked = query.get("images").split(",")
    if len(asked) > MAX_IMAGES:
        raise fail(400, f"at most {MAX_IMAGES} images a print")
    chosen = []
    for item in asked:
        sop_uid, _, frame = item.partition(":")
        key = (sop_uid, int(frame) if frame.isdigit() else 1 if not frame else 0)
        if key not in by_key:
            raise fail(404, f"no image {item[:80]!r} in this series")
        chosen.append(by_key[key])
    return chosen


def _per_page(value: str) -> int:
    if not value.isdigit() or int(value) not in PER_PAGE:
        raise fail(400, "per_page must be 1, 2, 4 or 6")
    return int(value)


def _state(asked: str, states: list[dict[str, Any]]) -> str:
    """The presentation state to draw: the one asked for, none, or the newest of the series'."""
    if asked == "none":
        return ""
    if not asked:
        return str(states[0]["sop_uid"]) if states else ""
    if not _UID.fullmatch(asked) or asked not in {s["sop_uid"] for s in states}:
        raise fail(404, "no such presentation state for this series")
    return asked
