"""Modality Worklist matching (PS3.4 K.6.1): a worklist identifier compiled to SQL over the
scheduled orders (``index.WorklistItem``), with C-FIND's matching (``query.condition``): names
case- and accent-insensitive, wildcards, lists, date and time ranges.

An item holds one Scheduled Procedure Step, so the keys of the identifier's Scheduled
Procedure Step Sequence item are matched against the item's own columns, and the answer's
sequence has that one item.  Only open orders are answered: not completed, discontinued or
cancelled ones (unless ``keep_done``), and none whose start date is more than ``keep_days``
before ``today``.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from appliance.archive.index import database
from appliance.archive.reading.query import TooManyMatches, condition, is_universal

STEP_SEQUENCE = "ScheduledProcedureStepSequence"
DONE_STATES = ("COMPLETED", "DISCONTINUED", "CANCELLED")

# keyword -> (column, kind); a name is matched on its folded twin ``<column>_norm``.
PATIENT_KEYS = {
    "PatientName": ("w.patient_name", "name"),
    "PatientID": ("w.patient_id", "text"),
    "PatientBirthDate": ("w.birth_date", "date"),
    "PatientSex": ("w.sex", "text"),
    "PatientSpeciesDescription": ("w.species", "text"),
    "PatientBreedDescription": ("w.breed", "text"),
    "ResponsiblePerson": ("w.responsible_person", "text"),
    "ResponsiblePersonRole": ("w.responsible_person_role", "text"),
    "ResponsibleOrganization": ("w.responsible_organization", "text"),
    "AccessionNumber": ("w.accession", "text"),
    "RequestedProcedureID": ("w.requested_procedure_id", "text"),
    "RequestedProcedureDescription": ("w.requested_procedure_description", "text"),
    "ReferringPhysicianName": ("w.referring_physician", "text"),
    "StudyInstanceUID": ("w.study_uid", "uid"),
    "PlacerOrderNumberImagingServiceRequest": ("w.placer_order", "text"),
    "FillerOrderNumberImagingServiceRequest": ("w.filler_order", "text"),
}
STEP_KEYS = {  # the Scheduled Procedure Step Sequence item's
    "Modality": ("w.modality", "text"),
    "ScheduledStationAETitle": ("w.station_aet", "text"),
    "ScheduledProcedureStepStartDate": ("w.start_date", "date"),
    "ScheduledProcedureStepStartTime": ("w.start_time", "date"),
    "ScheduledProcedureStepDescription": ("w.step_description", "text"),
    "ScheduledProcedureStepID": ("w.step_id", "text"),
    "ScheduledPerformingPhysicianName": ("w.performing_physician", "text"),
    # PS3.3 C.4.10's terms: an item in progress has STARTED, a cancelled one is CANCELED.
    "ScheduledProcedureStepStatus": (
        "CASE w.state WHEN 'IN PROGRESS' THEN 'STARTED' WHEN 'CANCELLED' THEN 'CANCELED' ELSE w.state END",
        "text",
    ),
}
ITEM_KINDS = {keyword: kind for keyword, (_column, kind) in STEP_KEYS.items()}
_COLUMNS = [column for column, _kind in (*PATIENT_KEYS.values(), *STEP_KEYS.values())]


@dataclass(frozen=True)
class WorklistOptions:
    keep_days: int = 1  # items whose start date is older leave the worklist
    keep_done: bool = False  # completed, discontinued and cancelled items stay on it
    fold_names: bool = True
    max_results: int = 10000


def _test(column: str, kind: str, value: str, fold_names: bool) -> tuple[str, list[Any]]:
    if kind == "name" and fold_names:
        return condition("name", f"{column}_norm", value)
    return condition("text" if kind == "name" else kind, column, value)


def compile_worklist(identifier: Mapping[str, Any], options: WorklistOptions, today: str) -> tuple[str, list[Any]]:
    """``SELECT`` of every column of ``_COLUMNS`` for the items ``identifier`` matches."""
    where, params = ["(w.start_date = '' OR w.start_date >= ?)"], [_days_before(today, options.keep_days)]
    if not options.keep_done:
        where.append(f"w.state NOT IN ({', '.join('?' * len(DONE_STATES))})")
        params += DONE_STATES
    items = identifier.get(STEP_SEQUENCE) or [{}]
    keys = [(kw, v, PATIENT_KEYS[kw]) for kw, v in identifier.items() if kw in PATIENT_KEYS]
    keys += [(kw, v, STEP_KEYS[kw]) for kw, v in items[0].items() if kw in STEP_KEYS]
    for _keyword, value, (column, kind) in keys:
        if isinstance(value, str) and not is_universal(value):
            test, values = _test(column, kind, value, options.fold_names)
            where.append(test)
            params += values
    columns = ", ".join(_COLUMNS)
    sql = f"SELECT {columns} FROM worklistitem w WHERE {' AND '.join(where)} ORDER BY w.start_date, w.start_time, w.id"
    return sql, params


def _days_before(today: str, days: int) -> str:
    return (date(int(today[:4]), int(today[4:6]), int(today[6:8])) - timedelta(days=max(days, 0))).strftime("%Y%m%d")


def find_worklist(
    identifier: Mapping[str, Any], options: WorklistOptions, today: str
) -> Generator[dict[str, Any], None, None]:
    """The matching items, one dict each (keyword -> value; the step's keys in a one-item list
    under ``ScheduledProcedureStepSequence``), streamed; TooManyMatches before the first."""
    sql, params = compile_worklist(identifier, options, today)
    if options.max_results > 0:
        (count,) = database.execute_sql(f"SELECT COUNT(*) FROM ({sql} LIMIT ?)",
                                        (*params, options.max_results + 1)).fetchone()  # fmt: skip
        if count > options.max_results:
            raise TooManyMatches(options.max_results)
    return _rows(sql, params)


def _rows(sql: str, params: list[Any]) -> Generator[dict[str, Any], None, None]:
    cursor = database.execute_sql(sql, params)
    patient_keys, step_keys = list(PATIENT_KEYS), list(STEP_KEYS)
    try:
        for row in cursor:
            match = dict(zip(patient_keys, row[: len(patient_keys)], strict=True))
            match[STEP_SEQUENCE] = [dict(zip(step_keys, row[len(patient_keys) :], strict=True))]
            yield match
    finally:
        cursor.close()  # a cancelled query must not hold its read snapshot
