"""DICOM matching (PS3.4 C.2.2.2) compiled to SQL over the index: what C-FIND answers from
(QIDO-RS too; the worklist's ``worklist.py`` matches with its ``condition``).  The SQLite expressions it needs are in ``sqlite.py``.

An identifier is a mapping of DICOM keywords to decoded values: a ``str`` (backslash-separated
when multi-valued) or, for a sequence key, a list of items (mappings of keyword to ``str``).
Answers come from the index alone and stream from one cursor.

Levels follow PS3.4 C.4.1 (Patient Root: PATIENT, STUDY, SERIES, IMAGE; Study Root: STUDY,
SERIES, IMAGE).  A key of the query level or of a level above it is matched and returned; a
key of a lower level, or one the index lacks, is returned empty.  Unique keys of the levels
above are matched when given but not required: Lightbox answers the relational form of a
hierarchical query too (more lenient than C.4.1.3.1, as most archives are).
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.archive.index import ITEM_KEYS, database
from appliance.archive.intake.charset import normalise_name
from appliance.archive.reading import sqlite

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
MODELS = {"PATIENT_ROOT": LEVELS, "STUDY_ROOT": LEVELS[1:]}
UNIQUE_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}

_TO_PATIENT = " JOIN patient p ON p.id = st.patient_id"
_TO_STUDY = " JOIN study st ON st.id = se.study_id" + _TO_PATIENT
_TO_SERIES = " JOIN series se ON se.id = i.series_id" + _TO_STUDY
_FROM = {  # each level's table, joined to the levels above it
    "PATIENT": "patient p",
    "STUDY": "study st" + _TO_PATIENT,
    "SERIES": "series se" + _TO_STUDY,
    "IMAGE": "instance i" + _TO_SERIES,
}
_ALIAS = {"PATIENT": "p", "STUDY": "st", "SERIES": "se", "IMAGE": "i"}
_STUDY_SERIES = "SELECT 1 FROM series x WHERE x.study_id = st.id AND {}"
_STUDY_INSTANCES = "SELECT 1 FROM series x JOIN instance y ON y.series_id = x.id WHERE x.study_id = st.id AND {}"


class QueryError(ValueError):
    """The identifier cannot be answered: wrong level for the model, or a malformed value."""


class TooManyMatches(Exception):
    def __init__(self, cap: int) -> None:
        super().__init__(f"more than {cap} matches")
        self.cap = cap


@dataclass(frozen=True)
class FindOptions:
    fold_names: bool = True  # person names match case- and accent-insensitively
    max_results: int = 10000


@dataclass(frozen=True)
class Key:
    """How one key is returned (``column``) and matched (``kind`` on ``match``, inside ``exists``)."""

    level: str
    column: str
    kind: str  # text, name, uid, date, number, items
    match: str = ""  # defaults to column; for names: the folded column
    exists: str = ""  # a correlated sub-query when the key is computed over lower levels

    @property
    def match_column(self) -> str:
        return self.match or self.column


def _k(level: str, column: str, kind: str = "text", **kw: str) -> Key:
    return Key(level, column, kind, **kw)


def _as_received(column: str) -> str:
    """An IS value returned as received ("04" stays "04"), matched as a number; rows indexed
    before the text was kept fall back to the number."""
    return f"COALESCE(NULLIF({column}_text, ''), {column})"


KEYS: dict[str, Key] = {
    # PS3.4 C.6.1.1.2 / C.6.2.1.2 (patient level; study level of the Study Root model)
    "PatientName": _k("PATIENT", "p.name", "name", match="p.name_norm"),
    "PatientID": _k("PATIENT", "p.patient_id"),
    "IssuerOfPatientID": _k("PATIENT", "p.issuer"),
    "PatientBirthDate": _k("PATIENT", "p.birth_date", "date"),
    "PatientSex": _k("PATIENT", "p.sex"),
    "PatientSpeciesDescription": _k("PATIENT", "p.species"),
    "PatientBreedDescription": _k("PATIENT", "p.breed"),
    "ResponsiblePerson": _k("PATIENT", "p.responsible_person"),
    "ResponsibleOrganization": _k("PATIENT", "p.responsible_organization"),
    "NumberOfPatientRelatedStudies": _k("PATIENT", "p.num_studies", "number"),
    "NumberOfPatientRelatedSeries": _k("PATIENT", "p.num_series", "number"),
    "NumberOfPatientRelatedInstances": _k("PATIENT", "p.num_instances", "number"),
    # C.6.1.1.3 study level
    "StudyInstanceUID": _k("STUDY", "st.study_uid", "uid"),
    "StudyDate": _k("STUDY", "st.study_date", "date"),
    "StudyTime": _k("STUDY", "st.study_time", "date"),
    "AccessionNumber": _k("STUDY", "st.accession"),
    "StudyID": _k("STUDY", "st.study_id"),
    "StudyDescription": _k("STUDY", "st.description"),
    "ReferringPhysicianName": _k("STUDY", "st.referring_physician", "name", match="st.referring_physician_norm"),
    "InstitutionName": _k("STUDY", "st.institution"),
    "PatientAge": _k("STUDY", "st.patient_age"),
    "PatientSize": _k("STUDY", "st.patient_size"),
    "PatientWeight": _k("STUDY", "st.patient_weight"),
    "ModalitiesInStudy": _k("STUDY", "st.modalities", match="x.modality", exists=_STUDY_SERIES),
    "SOPClassesInStudy": _k(
        "STUDY",
        sqlite.joined(
            "SELECT DISTINCT y.sop_class_uid AS c FROM series x JOIN instance y ON y.series_id = x.id"
            " WHERE x.study_id = st.id"
        ),
        "uid",
        match="y.sop_class_uid",
        exists=_STUDY_INSTANCES,
    ),
    "TimezoneOffsetFromUTC": _k("STUDY", "st.timezone_offset"),
    "NumberOfStudyRelatedSeries": _k("STUDY", "st.num_series", "number"),
    "NumberOfStudyRelatedInstances": _k("STUDY", "st.num_instances", "number"),
    # C.6.1.1.4 series level
    "SeriesInstanceUID": _k("SERIES", "se.series_uid", "uid"),
    "Modality": _k("SERIES", "se.modality"),
    "SeriesNumber": _k("SERIES", _as_received("se.series_number"), "number", match="se.series_number"),
    "SeriesDescription": _k("SERIES", "se.description"),
    "BodyPartExamined": _k("SERIES", "se.body_part"),
    "Laterality": _k("SERIES", "se.laterality"),
    "SeriesDate": _k("SERIES", "se.series_date", "date"),
    "SeriesTime": _k("SERIES", "se.series_time", "date"),
    "ProtocolName": _k("SERIES", "se.protocol_name"),
    "StationName": _k("SERIES", "se.station_name"),
    "Manufacturer": _k("SERIES", "se.manufacturer"),
    "ManufacturerModelName": _k("SERIES", "se.model_name"),
    "NumberOfSeriesRelatedInstances": _k("SERIES", "se.num_instances", "number"),
    "RequestAttributesSequence": _k("SERIES", "se.request_attributes", "items"),
    "PerformedProcedureStepStartDate": _k("SERIES", "se.pps_start_date", "date"),
    "PerformedProcedureStepStartTime": _k("SERIES", "se.pps_start_time", "date"),
    # C.6.1.1.5 composite object instance level
    "SOPInstanceUID": _k("IMAGE", "i.sop_uid", "uid"),
    "SOPClassUID": _k("IMAGE", "i.sop_class_uid", "uid"),
    "InstanceNumber": _k("IMAGE", _as_received("i.instance_number"), "number", match="i.instance_number"),
    "ContentDate": _k("IMAGE", "i.content_date", "date"),
    "ContentTime": _k("IMAGE", "i.content_time", "date"),
    "AcquisitionDateTime": _k("IMAGE", "i.acquisition_datetime", "date"),
    "Rows": _k("IMAGE", "i.rows", "number"),
    "Columns": _k("IMAGE", "i.columns", "number"),
    "NumberOfFrames": _k("IMAGE", _as_received("i.number_of_frames"), "number", match="i.number_of_frames"),
    "BitsAllocated": _k("IMAGE", "i.bits_allocated", "number"),
    "AvailableTransferSyntaxUID": _k("IMAGE", "i.transfer_syntax", "uid"),
}


@dataclass
class _Sql:
    conditions: list[str]
    params: list[Any]


def _alternatives(value: str) -> list[str]:
    return [v.strip() for v in value.split("\\")]


def is_universal(value: str) -> bool:
    # C.2.2.2.3: a zero-length value; a lone * is universal too (C.2.2.2.4).
    return any(v in ("", "*") for v in _alternatives(value))


def _text(column: str, value: str, wildcards: bool = True) -> tuple[str, list[Any]]:
    """Single value (C.2.2.2.1), wildcard (C.2.2.2.4) and list matching: case-sensitive."""
    exact = [v for v in _alternatives(value) if not (wildcards and ("*" in v or "?" in v))]
    patterns = [sqlite.glob(v) for v in _alternatives(value) if v not in exact]
    parts = [sqlite.WILDCARD_MATCH.format(column) for _ in patterns]
    if exact:
        parts.append(f"{column} = ?" if len(exact) == 1 else f"{column} IN ({', '.join('?' * len(exact))})")
    return "(" + " OR ".join(parts) + ")", patterns + exact


def _range(column: str, value: str) -> tuple[str, list[Any]]:
    """Range matching (C.2.2.2.5) of DA, TM and DT as strings; a bound may be partial (a TM
    of 1200 as the upper bound takes in 12:00:59), either side may be open."""
    if "-" not in value:
        return _text(column, value, wildcards=False)
    low, high = (part.strip() for part in value.split("-", 1))
    parts, params = [f"{column} != ''"], []
    if low:
        parts.append(f"{column} >= ?")
        params.append(low)
    if high:
        parts.append(f"{column} <= ?")
        params.append(high + "~")  # "~" sorts after every digit, "." and "+"
    return "(" + " AND ".join(parts) + ")", params


def _number(column: str, value: str) -> tuple[str, list[Any]]:
    try:
        numbers = [int(v) for v in _alternatives(value)]
    except ValueError:
        raise QueryError(f"not an integer: {value!r}") from None
    return f"{column} IN ({', '.join('?' * len(numbers))})", numbers


def condition(kind: str, column: str, value: str) -> tuple[str, list[Any]]:
    """The SQL test (and its parameters) of matching ``column`` against ``value`` by ``kind``
    (text, name: its folded column, uid, date, number); the worklist's matching uses it too."""
    if kind == "name":
        return _text(column, "\\".join(normalise_name(v) for v in _alternatives(value)))
    if kind == "uid":
        return _text(column, value, wildcards=False)  # C.2.2.2.2: list of UIDs, no wildcards
    if kind == "date":
        return _range(column, value)
    if kind == "number":
        return _number(column, value)
    return _text(column, value)


def _item_conditions(items: Sequence[Mapping[str, str]]) -> _Sql:
    """Sequence matching (C.2.2.2.6): one item of keys, matched against each stored item."""
    sql = _Sql([], [])
    for keyword, value in (items[0] if items else {}).items():
        if keyword in ITEM_KEYS and not is_universal(value):
            test, params = condition(ITEM_KEYS[keyword], sqlite.item_value(keyword), value)
            sql.conditions.append(test)
            sql.params += params
    return sql


@dataclass(frozen=True)
class Plan:
    """One query, compiled: ``sql`` selects ``returned`` (keywords) in order."""

    sql: str
    params: tuple[Any, ...]
    returned: tuple[str, ...]
    level: str


def compile_query(model: str, level: str, identifier: Mapping[str, Any], options: FindOptions) -> Plan:
    levels = MODELS.get(model)
    if levels is None:
        raise QueryError(f"unknown information model {model!r}")
    if level not in levels:
        raise QueryError(f"Query/Retrieve Level {level!r} is not one of {', '.join(levels)}")
    visible = LEVELS[: LEVELS.index(level) + 1]
    where = _Sql([], [])
    columns, select_params = [], []
    returned = [UNIQUE_KEYS[lv] for lv in levels[: levels.index(level) + 1]]
    returned += [kw for kw in identifier if kw in KEYS and KEYS[kw].level in visible and kw not in returned]
    for keyword in returned:
        key, value = KEYS[keyword], identifier.get(keyword, "")
        if key.kind == "items":
            items = _item_conditions(value or [])
            test = " AND ".join(items.conditions) or "1"
            columns.append(sqlite.ITEMS_AS_JSON.format(test))
            select_params += items.params
            if items.conditions:
                where.conditions.append(f"EXISTS (SELECT 1 {sqlite.ITEMS.format(test)})")
                where.params += items.params
            continue
        columns.append(key.column)
        if not isinstance(value, str) or is_universal(value):
            continue
        column = key.match_column if (key.kind != "name" or options.fold_names) else key.column
        kind = key.kind if (key.kind != "name" or options.fold_names) else "text"
        test, params = condition(kind, column, value)
        where.conditions.append(f"EXISTS ({key.exists.format(test)})" if key.exists else test)
        where.params += params
    sql = f"SELECT {', '.join(columns)} FROM {_FROM[level]}"
    if where.conditions:
        sql += " WHERE " + " AND ".join(where.conditions)
    return Plan(sql, tuple(select_params + where.params), tuple(returned), level)


def _count_plan(plan: Plan, limit: int) -> tuple[str, tuple[Any, ...]]:
    # Only the WHERE matters for the count, but the select list's parameters come first.
    return f"SELECT COUNT(*) FROM ({plan.sql} LIMIT ?)", plan.params + (limit,)


def find(
    model: str, level: str, identifier: Mapping[str, Any], options: FindOptions
) -> Generator[dict[str, Any], None, None]:
    """The matches of ``identifier``, one dict (keyword -> value) each, streamed.

    Raises QueryError or TooManyMatches before anything is streamed: the cap is checked with
    a count bounded by it, so that a refusal never follows a partial answer.
    """
    plan = compile_query(model, level, identifier, options)
    if options.max_results > 0:
        (count,) = database.execute_sql(*_count_plan(plan, options.max_results + 1)).fetchone()
        if count > options.max_results:
            raise TooManyMatches(options.max_results)
    return _rows(plan)


def find_page(
    model: str, level: str, identifier: Mapping[str, Any], options: FindOptions, limit: int, offset: int = 0
) -> tuple[Generator[dict[str, Any], None, None], bool]:
    """At most ``limit`` matches from ``offset`` on, streamed, and whether more follow them
    (known before the first match: QIDO-RS says so in a header), for QIDO-RS paging.  The
    order is stable: studies newest first (a viewer's first page is the latest work), series
    and instances in the order they were received."""
    plan = compile_query(model, level, identifier, options)
    (more,) = database.execute_sql(f"SELECT COUNT(*) FROM ({plan.sql} LIMIT 1 OFFSET ?)",
                                   plan.params + (offset + limit,)).fetchone()  # fmt: skip
    order = " DESC" if level == "STUDY" else ""
    sql = f"{plan.sql} ORDER BY {_ALIAS[level]}.id{order} LIMIT ? OFFSET ?"
    return _rows(Plan(sql, plan.params + (limit, offset), plan.returned, level)), bool(more)


def _rows(plan: Plan) -> Generator[dict[str, Any], None, None]:
    cursor = database.execute_sql(plan.sql, plan.params)
    try:
        for row in cursor:
            yield {kw: _value(kw, v) for kw, v in zip(plan.returned, row, strict=True)}
    finally:
        cursor.close()  # a cancelled query must not hold its read snapshot


def _value(keyword: str, value: Any) -> Any:
    if value is None:
        return [] if KEYS[keyword].kind == "items" else ""
    if KEYS[keyword].kind == "items":
        return json.loads(value)
    return value
