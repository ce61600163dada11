"""What a de-identified share link changes in the answers it lets through (``shared.py``): the
study's row and the viewer's facts without the patient's and the study's text, dates shifted,
the frame of reference and every UID of the study replaced by the link's own (``aliases.py``),
no presentation states (their labels and authors are text)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import bottle

from appliance.deidentify import BURNED_IN_CLASSES, BURNED_IN_MODALITIES, Plan
from appliance.web.aliases import Aliases


def deidentified_study(study: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """A study's row with the patient's and the study's text removed and its date shifted."""
    kept = {"study_uid", "modalities", "num_series", "num_instances", "study_time", "identity_conflict"}
    blank = {k: ("" if isinstance(v, str) else v) for k, v in study.items() if k not in kept}
    return {**study, **blank, "study_date": plan.shift(study["study_date"]) if study["study_date"] else ""}


def _json_body(answer: Any) -> dict[str, Any] | None:
    ok = isinstance(answer, bottle.HTTPResponse) and answer.status_code == 200 and isinstance(answer.body, str)
    return json.loads(answer.body) if ok else None


def _viewer_facts(answer: Any, plan: Plan) -> Any:
    """The viewer's facts of a series without the patient's and the study's text."""
    body = _json_body(answer)
    if body is not None:
        body["patient"] = dict.fromkeys(body["patient"], "")
        body["study"] = {"uid": body["study"]["uid"], "date": plan.shift(body["study"]["date"] or "")}
        body["series"]["description"] = ""
        answer.body = json.dumps(body)
    return answer


def _geometry(answer: Any, plan: Plan) -> Any:
    body = _json_body(answer)
    if body is not None and body.get("frame_of_reference"):
        body["frame_of_reference"] = plan.uid(body["frame_of_reference"])  # as in the de-identified files
        answer.body = json.dumps(body)
    return answer


REDACT: dict[str, Callable[[Any, Plan], Any]] = {
    "/api/series/<series_uid>/viewer": _viewer_facts,
    "/api/series/<series_uid>/geometry": _geometry,
}


def aliased(answer: Any, aliases: Aliases) -> Any:
    """JSON answers with the link's UIDs for the archive's (pictures and videos have none)."""
    if isinstance(answer, bottle.HTTPResponse) and isinstance(answer.body, str):
        answer.body = aliases.text(answer.body)
        answer.set_header("Content-Length", str(len(answer.body.encode())))
    elif isinstance(answer, dict):
        answer = json.loads(aliases.text(json.dumps(answer)))
    return answer


def no_states(answer: Any) -> dict[str, Any]:
    return {"presentation_states": []}  # their labels and authors are text; the viewer shows none


def may_show_burned_in(series: dict[str, Any]) -> bool:
    return series["modality"].upper() in BURNED_IN_MODALITIES or any(
        i["sop_class_uid"].startswith(BURNED_IN_CLASSES) for i in series["instances"]
    )
