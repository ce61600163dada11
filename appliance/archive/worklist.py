"""The worklist: scheduled orders (``index.WorklistItem``) that modalities fetch over the
Modality Worklist service, made and changed from the web (and later by MPPS and HL7 orders).

An item is one Requested Procedure with one Scheduled Procedure Step, for one patient (or
animal and owner).  Its Study Instance UID is made with it, so that the images a modality
takes from the item carry it (and its Accession Number); ``for_study`` finds the order of a
study by either.

API (``archive.worklist``), every field a ``str`` keyed as in ``FIELDS``:

- ``create(fields) -> dict``: a new SCHEDULED item.  Needs a patient name or ID; an empty
  Accession Number becomes ``LB`` + the item's number, and the Requested Procedure ID and
  Scheduled Procedure Step ID default to it.  ``study_uid`` may be given (an HL7 order that
  carries one), otherwise one is made.  ``create_many(orders, study_uids)``: several in one
  transaction.
- ``update(item_id, fields) -> dict``: change the fields given (not state, not study UID).
- ``cancel(item_id) -> dict``: state CANCELLED (the modality no longer sees it).
- ``set_state(item_id, state) -> dict``: one of ``STATES``; for MPPS: N-CREATE IN PROGRESS
  sets "IN PROGRESS", N-SET COMPLETED/DISCONTINUED sets those.  Find the item first with
  ``by_study_uid`` or ``by_order`` (the MPPS's Scheduled Step Attributes Sequence carries
  the Study Instance UID and Accession Number).
- ``get(item_id)``, ``by_study_uid(uid)``, ``by_order(placer=, filler=, accession=)``: one
  item or None; an HL7 order's new/change/cancel finds its item by Placer or Filler Order
  Number (or Accession Number) and calls ``create``/``update``/``cancel``.
- ``open_for_patient(patient_id)``: the items of a Patient ID not yet done (an HL7 ADT^A08
  patient update changes their patient fields).
- ``patients(term=, study_uid=)``: patients of the index to schedule for, as fields.
- ``listing(include_done, since) -> list[dict]``: the web's list; ``for_study(study_uid,
  accession)``: the orders a study's images belong to.  Each dict carries ``images``: how
  many instances of the order's study (by UID or Accession Number) are stored.
- ``find(identifier)``: the MWL SCP's matches (``reading/worklist.py``).

Orders are not content: their changes are not in the change log (which drives thumbnails,
stability, forwarding and backup of stored files); the web records each change in the audit
trail, and each item keeps its created and updated times.  Writes take the one write lock.
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator, Mapping, Sequence
from datetime import date
from typing import Any

from peewee import SqliteDatabase, fn
from pydicom.uid import generate_uid

from appliance.archive.index import Patient, Study, WorklistItem
from appliance.archive.intake.charset import normalise_name
from appliance.archive.reading import worklist as matching
from appliance.archive.writelock import WriteLock

STATES = ("SCHEDULED", "IN PROGRESS", "COMPLETED", "DISCONTINUED", "CANCELLED")
MAX_ITEMS = 200_000  # rows the table may hold (rule 9: every table is bounded)
# field -> (most characters, pattern or None): the DICOM VR's length, CS/DA/TM/AE forms.
FIELDS: dict[str, tuple[int, re.Pattern[str] | None]] = {
    "patient_name": (64, None),
    "patient_id": (64, None),
    "birth_date": (8, re.compile(r"(\d{8})?")),
    "sex": (1, re.compile(r"[MFO]?")),
    "species": (64, None),
    "breed": (64, None),
    "responsible_person": (64, None),
    "responsible_person_role": (16, re.compile(r"[A-Z0-9 _]*")),
    "responsible_organization": (64, None),
    "accession": (16, None),
    "requested_procedure_id": (16, None),
    "requested_procedure_description": (64, None),
    "step_id": (16, None),
    "modality": (16, re.compile(r"[A-Z0-9 _]*")),
    "station_aet": (16, None),
    "start_date": (8, re.compile(r"(\d{8})?")),
    "start_time": (6, re.compile(r"(\d{4}(\d\d)?)?")),
    "step_description": (64, None),
    "performing_physician": (64, None),
    "referring_physician": (64, None),
    "placer_order": (64, None),
    "filler_order": (64, None),
}
_UPPER = ("sex", "responsible_person_role", "modality")
_ACCESSION_PREFIX = "LB"
_FROM_PATIENT = {  # worklist field -> Patient column
    "patient_name": "name", "patient_id": "patient_id", "birth_date": "birth_date", "sex": "sex",
    "species": "species", "breed": "breed", "responsible_person": "responsible_person",
    "responsible_organization": "responsible_organization",
}  # fmt: skip


class WorklistError(ValueError):
    """A field that cannot be kept, an unknown item or state."""


def _clean(fields: Mapping[str, str]) -> dict[str, str]:
    cleaned = {}
    for name, raw in fields.items():
        if name not in FIELDS:
            continue
        value = " ".join(str(raw).replace("\\", " ").split())  # no backslash: it splits DICOM values
        value = value.upper() if name in _UPPER else value
        value = value.replace(":", "") if name == "start_time" else value.replace("-", "") if "date" in name else value
        most, pattern = FIELDS[name]
        if len(value) > most or (pattern is not None and not pattern.fullmatch(value)):
            raise WorklistError(f"{name.replace('_', ' ')}: {value!r} is not a valid value")
        cleaned[name] = value
    return cleaned


class Worklist:
    def __init__(self, db: SqliteDatabase, write_lock: WriteLock, options: matching.WorklistOptions) -> None:
        self.db = db
        self.write_lock = write_lock
        self.options = options

    # ------------------------------------------------------------------ writing

    def create(self, fields: Mapping[str, str], study_uid: str = "") -> dict[str, Any]:
        return self.create_many([fields], [study_uid])[0]

    def create_many(self, orders: Sequence[Mapping[str, str]], study_uids: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Several new items in one transaction (all or none)."""
        rows, now = [], time.time()
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            if WorklistItem.select().count() + len(orders) > MAX_ITEMS:
                raise WorklistError(f"the worklist may hold {MAX_ITEMS} items: remove old ones first")
            uids = [*study_uids[: len(orders)], *[""] * (len(orders) - len(study_uids))]
            for fields, study_uid in zip(orders, uids, strict=True):
                values = _clean(fields)
                if not (values.get("patient_name") or values.get("patient_id")):
                    raise WorklistError("a patient name or patient ID is needed")
                row = WorklistItem.create(
                    **values,
                    patient_name_norm=normalise_name(values.get("patient_name", "")),
                    study_uid=study_uid or generate_uid(),
                    created_at=now,
                    updated_at=now,
                )
                row.accession = row.accession or f"{_ACCESSION_PREFIX}{row.id:08d}"
                row.requested_procedure_id = row.requested_procedure_id or row.accession
                row.step_id = row.step_id or row.accession
                row.save()
                rows.append(row)
        return [self._json(row) for row in rows]

    def update(self, item_id: int, fields: Mapping[str, str]) -> dict[str, Any]:
        values = _clean(fields)
        for made in ("accession", "requested_procedure_id", "step_id"):  # an empty one keeps what was made
            if values.get(made) == "":
                del values[made]
        if "patient_name" in values:
            values["patient_name_norm"] = normalise_name(values["patient_name"])
        return self._write(item_id, values)

    def cancel(self, item_id: int) -> dict[str, Any]:
        return self.set_state(item_id, "CANCELLED")

    def set_state(self, item_id: int, state: str) -> dict[str, Any]:
        if state not in STATES:
            raise WorklistError(f"unknown state {state!r}: one of {', '.join(STATES)}")
        return self._write(item_id, {"state": state})

    def _write(self, item_id: int, values: dict[str, str]) -> dict[str, Any]:
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            row = WorklistItem.get_or_none(WorklistItem.id == item_id)
            if row is None:
                raise WorklistError(f"no worklist item {item_id}")
            for name, value in values.items():
                setattr(row, name, value)
            if not (row.patient_name or row.patient_id):
                raise WorklistError("a patient name or patient ID is needed")
            row.updated_at = time.time()
            row.save()
        return self._json(row)

    # ------------------------------------------------------------------ reading

    def get(self, item_id: int) -> dict[str, Any] | None:
        row = WorklistItem.get_or_none(WorklistItem.id == item_id)
        return self._json(row) if row is not None else None

    def by_study_uid(self, study_uid: str) -> dict[str, Any] | None:
        row = WorklistItem.get_or_none(WorklistItem.study_uid == study_uid)
        return self._json(row) if row is not None else None

    def by_order(self, *, placer: str = "", filler: str = "", accession: str = "") -> dict[str, Any] | None:
        """The newest item with this Placer or Filler Order Number or Accession Number (the
        first of them given that finds one)."""
        for column, value in ((WorklistItem.placer_order, placer), (WorklistItem.filler_order, filler),
                              (WorklistItem.accession, accession)):  # fmt: skip
            if value:
                row = WorklistItem.select().where(column == value).order_by(WorklistItem.id.desc()).first()
                if row is not None:
                    return self._json(row)
        return None

    def open_for_patient(self, patient_id: str) -> list[dict[str, Any]]:
        select = WorklistItem.select().where(
            (WorklistItem.patient_id == patient_id) & WorklistItem.state.not_in(matching.DONE_STATES)
        )
        return [self._json(row) for row in select.order_by(WorklistItem.id)]

    def listing(self, include_done: bool = False, since: str = "", limit: int = 500) -> list[dict[str, Any]]:
        """Items starting on or after ``since`` (YYYYMMDD; all if empty) by start, open ones
        only unless ``include_done``."""
        select = WorklistItem.select()
        if since:
            select = select.where((WorklistItem.start_date >= since) | (WorklistItem.start_date == ""))
        if not include_done:
            select = select.where(WorklistItem.state.not_in(matching.DONE_STATES))
        order = (WorklistItem.start_date, WorklistItem.start_time, WorklistItem.id)
        return [self._json(row) for row in select.order_by(*order).limit(limit)]

    def for_study(self, study_uid: str, accession: str) -> list[dict[str, Any]]:
        """The orders whose images these are: by Study Instance UID, or by Accession Number."""
        test = WorklistItem.study_uid == study_uid
        if accession:
            test |= WorklistItem.accession == accession
        return [self._json(row) for row in WorklistItem.select().where(test).order_by(WorklistItem.id)]

    def patients(self, term: str = "", study_uid: str = "", limit: int = 20) -> list[dict[str, str]]:
        """Patients of the index to schedule for (so that the IDs match): those whose folded
        name holds ``term`` or whose Patient ID starts with it, or the patient of a study."""
        select = Patient.select()
        if study_uid:
            select = select.join(Study).where(Study.study_uid == study_uid)
        elif term.strip():
            folded = normalise_name(term)
            select = select.where(Patient.name_norm.contains(folded) | Patient.patient_id.startswith(term.strip()))
        else:
            return []
        return [{name: getattr(row, column) for name, column in _FROM_PATIENT.items()}
                for row in select.order_by(Patient.name_norm).limit(limit)]  # fmt: skip

    def find(self, identifier: Mapping[str, Any], today: str = "") -> Generator[dict[str, Any], None, None]:
        """The MWL SCP's matches (see ``reading/worklist.py``); raises TooManyMatches first."""
        return matching.find_worklist(identifier, self.options, today or date.today().strftime("%Y%m%d"))

    def _json(self, row: WorklistItem) -> dict[str, Any]:
        test = Study.study_uid == row.study_uid
        if row.accession:
            test |= Study.accession == row.accession
        images = Study.select(fn.COALESCE(fn.SUM(Study.num_instances), 0)).where(test).scalar()
        return {
            "id": row.id,
            "state": row.state,
            "study_uid": row.study_uid,
            **{name: getattr(row, name) for name in FIELDS},
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "images": images,
        }
