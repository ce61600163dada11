"""Performed procedure steps (``index.PerformedStep``): what a modality reports over MPPS
(PS3.4 F) that it did — started (IN PROGRESS), then COMPLETED or DISCONTINUED — kept with the
order it did it for, whose state follows (``Worklist.set_state``).

API (``archive.performed``), the DICOM side (``dicom/mpps.py``) giving plain fields:

- ``create(sop_uid, step, scheduled) -> dict``: a new IN PROGRESS step.  ``step`` holds the
  ``STEP_FIELDS``; ``scheduled`` the Scheduled Step Attributes items' (study_uid, accession,
  requested_procedure_id, step_id): the order is the item with that Study Instance UID, else
  with that Accession Number, else with that Scheduled Procedure Step ID; none is an
  unscheduled step, kept for its study.  Raises ``DuplicateStep``.
- ``update(sop_uid, state, step) -> dict``: an N-SET: the fields given, and ``state`` (IN
  PROGRESS, COMPLETED, DISCONTINUED).  Raises ``NoSuchStep``, ``FinalStep`` (a COMPLETED or
  DISCONTINUED step may no longer change).
- ``reasons(item_ids)``: why the discontinued steps of these orders were stopped.
- ``for_study(study_uid, item_ids)``, ``get(sop_uid)``: as dicts, each series with ``received``: the
  images of it stored here, beside ``images``, how many the modality says it made.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from peewee import SqliteDatabase

from appliance.archive.index import PerformedStep, Series, WorklistItem
from appliance.archive.worklist import Worklist
from appliance.archive.writelock import WriteLock

PERFORMED_STATES = ("IN PROGRESS", "COMPLETED", "DISCONTINUED")
FINAL_STATES = ("COMPLETED", "DISCONTINUED")
STEP_FIELDS = ("calling_ae", "station_aet", "modality", "description", "start_date", "start_time",
               "end_date", "end_time", "reason")  # fmt: skip
MAX_STEPS = 200_000  # rows the table may hold (rule 9)
MAX_SERIES = 1000  # series one step may name


class PerformedStepError(ValueError):
    """A step that cannot be made or changed."""


class DuplicateStep(PerformedStepError):
    pass


class NoSuchStep(PerformedStepError):
    pass


class FinalStep(PerformedStepError):
    pass


class PerformedSteps:
    def __init__(self, db: SqliteDatabase, write_lock: WriteLock, worklist: Worklist) -> None:
        self.db = db
        self.write_lock = write_lock
        self.worklist = worklist

    def create(self, sop_uid: str, step: Mapping[str, Any], scheduled: Sequence[Mapping[str, str]]) -> dict[str, Any]:
        now = time.time()
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            if PerformedStep.select().where(PerformedStep.sop_uid == sop_uid).exists():
                raise DuplicateStep(f"performed procedure step {sop_uid} exists already")
            if PerformedStep.select().count() >= MAX_STEPS:
                raise PerformedStepError(f"at most {MAX_STEPS} performed steps are kept")
            item = _order(scheduled)
            first = scheduled[0] if scheduled else {}
            row = PerformedStep.create(
                sop_uid=sop_uid,
                worklist=item,
                study_uid=first.get("study_uid") or (item.study_uid if item else ""),
                accession=first.get("accession") or (item.accession if item else ""),
                series=_series_json(step.get("series", [])),
                created_at=now,
                updated_at=now,
                **_fields(step),
            )
        if item is not None:
            self.worklist.set_state(item.id, "IN PROGRESS")
        return self._json(row)

    def update(self, sop_uid: str, state: str, step: Mapping[str, Any]) -> dict[str, Any]:
        if state not in PERFORMED_STATES:
            raise PerformedStepError(f"unknown state {state!r}")
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            row = PerformedStep.get_or_none(PerformedStep.sop_uid == sop_uid)
            if row is None:
                raise NoSuchStep(f"no performed procedure step {sop_uid}")
            if row.state in FINAL_STATES:
                raise FinalStep(f"performed procedure step is {row.state}: it may no longer be updated")
            for name, value in _fields(step).items():
                setattr(row, name, value)
            if "series" in step:
                row.series = _series_json(step["series"])
            row.state, row.updated_at = state, time.time()
            row.save()
        if row.worklist_id is not None:
            self.worklist.set_state(row.worklist_id, state)
        return self._json(row)

    def get(self, sop_uid: str) -> dict[str, Any] | None:
        row = PerformedStep.get_or_none(PerformedStep.sop_uid == sop_uid)
        return self._json(row) if row is not None else None

    def for_study(self, study_uid: str, item_ids: Sequence[int] = ()) -> list[dict[str, Any]]:
        """The steps done for this study, or for one of its orders (``item_ids``)."""
        test = PerformedStep.study_uid == study_uid
        if item_ids:
            test |= PerformedStep.worklist.in_(list(item_ids))
        return [self._json(row) for row in PerformedStep.select().where(test).order_by(PerformedStep.id)]

    def reasons(self, item_ids: Sequence[int]) -> dict[int, str]:
        """Why the DISCONTINUED steps of these orders were stopped (item id -> reason)."""
        select = PerformedStep.select(PerformedStep.worklist, PerformedStep.reason).where(
            PerformedStep.worklist.in_(list(item_ids)), PerformedStep.state == "DISCONTINUED"
        )
        return {row.worklist_id: row.reason for row in select}

    def _json(self, row: PerformedStep) -> dict[str, Any]:
        series = json.loads(row.series)
        stored = dict(
            Series.select(Series.series_uid, Series.num_instances)
            .where(Series.series_uid.in_([s["series_uid"] for s in series]))
            .tuples()
        ) if series else {}  # fmt: skip
        for entry in series:
            entry["received"] = stored.get(entry["series_uid"], 0)
        return {
            "sop_uid": row.sop_uid,
            "state": row.state,
            "worklist_item": row.worklist_id,
            "study_uid": row.study_uid,
            "accession": row.accession,
            **{name: getattr(row, name) for name in STEP_FIELDS},
            "series": series,
            "images": sum(s["images"] for s in series),
            "received": sum(min(s["received"], s["images"]) for s in series),
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }


def _fields(step: Mapping[str, Any]) -> dict[str, str]:
    """The step's text fields, cut to their columns' use (what a modality sends is unchecked)."""
    return {name: str(step[name])[:64] for name in STEP_FIELDS if step.get(name) is not None}


def _series_json(series: Sequence[Mapping[str, Any]]) -> str:
    if len(series) > MAX_SERIES:
        raise PerformedStepError(f"at most {MAX_SERIES} performed series per step")
    return json.dumps([{"series_uid": str(s["series_uid"])[:64], "description": str(s.get("description", ""))[:64],
                        "images": int(s.get("images", 0))} for s in series])  # fmt: skip


def _order(scheduled: Sequence[Mapping[str, str]]) -> WorklistItem | None:
    """The worklist item the step was scheduled as: by Study Instance UID first, else by
    Accession Number, else by Scheduled Procedure Step ID (the newest such item)."""
    for column, key in ((WorklistItem.study_uid, "study_uid"), (WorklistItem.accession, "accession"),
                        (WorklistItem.step_id, "step_id")):  # fmt: skip
        for attributes in scheduled:
            if value := attributes.get(key):
                found = WorklistItem.select().where(column == value).order_by(WorklistItem.id.desc()).first()
                if found is not None:
                    return found
    return None
