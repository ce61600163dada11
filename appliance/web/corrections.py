"""Deleting and correcting (admin only): the JSON routes behind the study page's Delete, Fix
patient details and Merge buttons.  Thin: ``archive.corrections`` does the work and the
audit; these routes read the forms and answer plainly."""

from __future__ import annotations

import functools
from typing import Any

import bottle
from bottle import request

from appliance.archive import Archive, CorrectionError, Identity
from appliance.web.auth import Guard, client_address, fail

_LEVELS = {"studies": "study", "series": "series", "instances": "instance"}


def _field(name: str) -> str | None:
    value = request.forms.getunicode(name)
    return None if value is None else value.strip()


def _dicom_date(value: str) -> str:
    """An HTML date input's 2026-12-01, or YYYYMMDD, as DICOM's 20261201 ('' stays '')."""
    return value.replace("-", "")


def person_name(old: str, family: str | None, given: str | None) -> str:
    """A DICOM PN with new family and given names; the old name's other components (middle
    name, prefix, suffix) and its other representations (ideographic, phonetic) are kept."""
    groups = old.split("=")
    parts = (groups[0].split("^") + [""] * 5)[:5]
    if family is not None:
        parts[0] = family
    if given is not None:
        parts[1] = given
    groups[0] = "^".join(parts).rstrip("^")
    return "=".join(groups).rstrip("=")


def install(app: bottle.Bottle, archive: Archive, guard: Guard) -> None:
    def target_or_404(level: str, uid: str) -> Any:
        target = archive.describe(level, uid)
        if target is None:
            raise fail(404, f"no such {level}")
        return target

    def deletion(level: str, uid: str) -> dict:
        """What a deletion would remove, and what to type to confirm it."""
        target = target_or_404(level, uid)
        return {**target.as_json(), "confirmation": target.confirmation}

    def delete(level: str, uid: str) -> dict:
        target_or_404(level, uid)
        try:
            deleted = archive.corrections.delete(
                level, uid, _field("confirm") or "", guard.user().name, client_address()
            )
        except CorrectionError as exc:
            raise fail(400, str(exc)) from None
        except LookupError:
            raise fail(404, f"no such {level}") from None
        study_left = archive.describe("study", deleted.study_uid) is not None
        return {"deleted": deleted.as_json(), "next": f"/studies/{deleted.study_uid}" if study_left else "/"}

    for collection, level in _LEVELS.items():  # plain rules, one per level: every route stays enumerable
        app.get(f"/api/{collection}/<uid>/deletion")(guard("admin")(functools.partial(deletion, level)))
        app.post(f"/api/{collection}/<uid>/delete")(guard("admin")(functools.partial(delete, level)))

    @app.post("/api/studies/<study_uid>/patient")
    @guard("admin")
    def edit_patient(study_uid: str) -> dict:
        """New name, ID, issuer or birth date for the patient of this study (or, with
        ``scope=patient``, of every study of that patient)."""
        old = archive.identity_of(study_uid)
        if old is None:
            raise fail(404, "no such study")
        given = {name: _field(name) for name in ("name", "patient_id", "issuer", "birth_date")}
        family, first = _field("family"), _field("given")
        if given["name"] is None and (family is not None or first is not None):
            given["name"] = person_name(old.name, family, first)
        new = Identity(
            given["name"] if given["name"] is not None else old.name,
            given["patient_id"] if given["patient_id"] is not None else old.patient_id,
            given["issuer"] if given["issuer"] is not None else old.issuer,
            _dicom_date(given["birth_date"]) if given["birth_date"] is not None else old.birth_date,
        )
        studies = archive.studies_of_patient(study_uid) if _field("scope") == "patient" else [study_uid]
        try:
            report = archive.corrections.edit_identity(studies, new, guard.user().name, client_address())
        except CorrectionError as exc:
            raise fail(400, str(exc)) from None
        return {"studies": report.studies, "instances": report.instances}

    @app.post("/api/studies/<study_uid>/merge")
    @guard("admin")
    def merge(study_uid: str) -> dict:
        """Every study of this study's patient takes the identity of the patient of ``into``."""
        into = _field("into") or ""
        try:
            report = archive.corrections.merge(study_uid, into, guard.user().name, client_address())
        except CorrectionError as exc:
            raise fail(400, str(exc)) from None
        except LookupError:
            raise fail(404, "no such study") from None
        return {"studies": report.studies, "instances": report.instances}
