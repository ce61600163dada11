"""The web UI's study list and study details, answered from the index.

Unlike C-FIND (``query.py``) this is for people: search as you type over folded names, IDs,
accession numbers, species, breed and owner, date and modality filters, sortable columns, pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from appliance.archive.index import database
from appliance.archive.intake.attributes import search_terms
from appliance.archive.intake.charset import normalise_name
from appliance.archive.reading import kinds, sqlite

PAGE_MAX = 200
# sort key -> ORDER BY columns; every order ends with the study id so that pages are stable
SORTS = {
    "date": ("st.study_date", "st.study_time"),
    "name": ("p.name_norm",),
    "patient_id": ("p.patient_id",),
    "birth_date": ("p.birth_date",),
    "description": ("st.description",),
    "modalities": ("st.modalities",),
    "accession": ("st.accession",),
    "images": ("st.num_instances",),
    "received": ("st.last_received_at",),
}
_DATE = re.compile(r"^\d{8}$")
_WORD_SPLIT = re.compile(r"[\s^=,]+")
_STUDY_COLUMNS = (
    "st.study_uid, p.name, p.patient_id, p.birth_date, p.sex, p.species, p.breed, p.responsible_person,"
    " st.study_date, st.study_time, st.description, st.modalities, st.accession, st.num_series,"
    " st.num_instances, st.referring_physician, st.institution, st.study_id, p.identity_conflict"
)


class BrowseError(ValueError):
    """A filter value is malformed."""


@dataclass(frozen=True)
class StudyFilter:
    text: str = ""  # words, each matching a name (folded), Patient ID, accession, species, breed or owner
    date_from: str = ""  # YYYYMMDD, inclusive
    date_to: str = ""
    modality: str = ""
    sort: str = "date"
    descending: bool = True
    offset: int = 0
    limit: int = 50

    def __post_init__(self) -> None:
        for value in (self.date_from, self.date_to):
            if value and not _DATE.match(value):
                raise BrowseError(f"date {value!r}: expected YYYYMMDD")
        if self.sort not in SORTS:
            raise BrowseError(f"sort {self.sort!r}: one of {', '.join(SORTS)}")
        if not 1 <= self.limit <= PAGE_MAX or self.offset < 0:
            raise BrowseError(f"limit 1-{PAGE_MAX}, offset >= 0")
        if len(self.text) > 200 or len(self.modality) > 16:
            raise BrowseError("search text or modality too long")


@dataclass(frozen=True)
class StudyRow:
    study_uid: str
    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    species: str
    breed: str
    owner: str
    study_date: str
    study_time: str
    description: str
    modalities: list[str]
    accession: str
    num_series: int
    num_instances: int
    referring_physician: str
    institution: str
    study_id: str
    identity_conflict: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _row(row: tuple) -> StudyRow:
    values = list(row)
    values[11] = [m for m in values[11].split("\\") if m]
    values[18] = bool(values[18])
    return StudyRow(*values)


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def ensure_search_index() -> str:
    """Make the search index if the database has none ("created"), or make it again if it was
    made by an older Lightbox ("upgraded"); "" when it is current.  Runs inside the archive's
    write lock and one transaction."""
    state = sqlite.search_index_state()
    if state == "current":
        return ""
    _fill_search_terms()
    sqlite.make_search_index()
    return "upgraded" if state == "old" else "created"


def _fill_search_terms() -> None:
    """``patient.search_terms`` for rows indexed before the column existed (folding is Python's)."""
    rows = database.execute_sql(
        "SELECT id, species, breed, responsible_person FROM patient"
        " WHERE search_terms = '' AND (species != '' OR breed != '' OR responsible_person != '')"
    ).fetchall()
    database.cursor().executemany(
        "UPDATE patient SET search_terms = ? WHERE id = ?",
        [(search_terms(*values), row_id) for row_id, *values in rows],
    )


# The longest word of three or more characters that few studies match is looked up in the search
# index, and the matching studies are then sorted; a shorter word, or one that many match (a
# species, a common breed), matches densely, so the studies are tested one by one in list order,
# which finds a page soonest.
_WORD_TEST = (
    "(p.name_norm LIKE ? ESCAPE '\\' OR p.patient_id LIKE ? ESCAPE '\\' OR st.accession LIKE ? ESCAPE '\\'"
    " OR p.search_terms LIKE ? ESCAPE '\\')"
)
DENSE_WORD = 3  # the shortest word the trigram index can look up
DENSE_MATCHES = 2000  # studies matching a word above which they are tested one by one
DENSE_MODALITY = 2000  # series of a modality above which studies are tested one by one
_MODALITY_MATCHES = "st.id IN (SELECT study_id FROM series WHERE modality = ?)"
_MODALITY_TEST = "EXISTS (SELECT 1 FROM series se WHERE se.study_id = st.id AND se.modality = ?)"
# The modalities in the archive by a loose scan of the series.modality index: one seek per
# distinct value, so a few microseconds however many series there are.
_MODALITIES = (
    "WITH RECURSIVE m(modality) AS (SELECT min(modality) FROM series WHERE modality > ''"
    " UNION ALL SELECT (SELECT min(modality) FROM series WHERE modality > m.modality) FROM m"
    " WHERE m.modality IS NOT NULL) SELECT modality FROM m WHERE modality IS NOT NULL"
)


def modalities() -> list[str]:
    """Every modality some series in the archive has, in alphabetical order."""
    return [m for (m,) in database.execute_sql(_MODALITIES)]


def _few_match(phrase: str) -> bool:
    (count,) = database.execute_sql(sqlite.WORD_COUNT, (phrase, DENSE_MATCHES + 1)).fetchone()
    return count <= DENSE_MATCHES


def list_studies(f: StudyFilter) -> tuple[list[StudyRow], bool]:
    """One page of studies matching ``f`` and whether more follow."""
    where, params = [], []
    words = sorted((w for w in _WORD_SPLIT.split(normalise_name(f.text)) if w), key=len, reverse=True)
    looked_up = False
    for word in words:
        # Names are matched in their folded form, IDs case-insensitively.
        phrase = sqlite.phrase(word)
        if not looked_up and len(word) >= DENSE_WORD and _few_match(phrase):
            looked_up = True
            where.append(sqlite.WORD_MATCHES)
            params.append(phrase)
        else:
            where.append(_WORD_TEST)
            params += [_like(word)] * 4
    if f.date_from:
        where.append("st.study_date >= ?")
        params.append(f.date_from)
    if f.date_to:
        where.append("st.study_date <= ? AND st.study_date != ''")
        params.append(f.date_to)
    if f.modality:
        modality = f.modality.upper()
        (series,) = database.execute_sql(
            "SELECT count(*) FROM (SELECT 1 FROM series WHERE modality = ? LIMIT ?)", (modality, DENSE_MODALITY + 1)
        ).fetchone()
        where.append(_MODALITY_TEST if series > DENSE_MODALITY else _MODALITY_MATCHES)
        params.append(modality)
    direction = " DESC" if f.descending else ""
    order = ", ".join(c + direction for c in (*SORTS[f.sort], "st.id"))
    sql = (
        f"SELECT {_STUDY_COLUMNS} FROM study st JOIN patient p ON p.id = st.patient_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY {order} LIMIT ? OFFSET ?"
    )
    rows = database.execute_sql(sql, (*params, f.limit + 1, f.offset)).fetchall()
    return [_row(r) for r in rows[: f.limit]], len(rows) > f.limit


@dataclass(frozen=True)
class InstanceRow:
    sop_uid: str
    sop_class_uid: str
    instance_number: int | None
    rows: int | None
    columns: int | None
    number_of_frames: int | None
    kind: str  # see kinds.py


@dataclass(frozen=True)
class SeriesRow:
    series_uid: str
    modality: str
    series_number: int | None
    description: str
    body_part: str
    laterality: str
    series_date: str
    series_time: str
    manufacturer: str
    model_name: str
    num_instances: int
    instances: list[InstanceRow]
    kind: str  # the instances' kind, or "mixed"


@dataclass(frozen=True)
class StudyDetail:
    study: StudyRow
    series: list[SeriesRow]

    def as_json(self) -> dict[str, Any]:
        return {"study": self.study.as_json(), "series": [asdict(s) for s in self.series]}


def study_detail(study_uid: str) -> StudyDetail | None:
    found = database.execute_sql(
        f"SELECT st.id, {_STUDY_COLUMNS} FROM study st JOIN patient p ON p.id = st.patient_id WHERE st.study_uid = ?",
        (study_uid,),
    ).fetchone()
    if found is None:
        return None
    study_id = found[0]
    instances: dict[int, list[InstanceRow]] = {}
    for series_id, syntax, sop_uid, sop_class, number, rows, columns, frames in database.execute_sql(
        "SELECT i.series_id, i.transfer_syntax, i.sop_uid, i.sop_class_uid, i.instance_number, i.rows, i.columns,"
        " i.number_of_frames FROM instance i JOIN series se ON se.id = i.series_id WHERE se.study_id = ?"
        " ORDER BY i.instance_number, i.sop_uid",
        (study_id,),
    ):
        kind = kinds.instance_kind(sop_class, syntax, rows is not None)
        instances.setdefault(series_id, []).append(InstanceRow(sop_uid, sop_class, number, rows, columns, frames, kind))
    series = []
    for series_id, *values in database.execute_sql(
        "SELECT id, series_uid, modality, series_number, description, body_part, laterality, series_date,"
        " series_time, manufacturer, model_name, num_instances FROM series WHERE study_id = ?"
        " ORDER BY series_number IS NULL, series_number, series_uid",
        (study_id,),
    ):
        members = instances.get(series_id, [])
        kind = kinds.series_kind(i.kind for i in members)
        series.append(SeriesRow(*values, members, kind))  # type: ignore[call-arg]  # the row's columns, in field order
    return StudyDetail(_row(found[1:]), series)


def study_of_series(series_uid: str) -> str | None:
    row = database.execute_sql(
        "SELECT st.study_uid FROM series se JOIN study st ON st.id = se.study_id WHERE se.series_uid = ?", (series_uid,)
    ).fetchone()
    return row[0] if row else None


def patient_studies(study_uid: str) -> list[StudyRow]:
    """Every study of the patient (identity) that ``study_uid`` belongs to, itself included,
    newest first (the viewer's list of priors)."""
    rows = database.execute_sql(
        f"SELECT {_STUDY_COLUMNS} FROM study st JOIN patient p ON p.id = st.patient_id"
        " WHERE st.patient_id = (SELECT patient_id FROM study WHERE study_uid = ?)"
        " ORDER BY st.study_date DESC, st.study_time DESC, st.id DESC",
        (study_uid,),
    )
    return [_row(row) for row in rows]


@dataclass(frozen=True)
class StudyLabel:
    """What names a study for people: its patient, description and date."""

    patient_name: str
    description: str
    study_date: str


def study_labels(study_uids: Iterable[str]) -> dict[str, StudyLabel]:
    """The labels of those studies still in the archive (for lists of events that name studies)."""
    uids = sorted(set(study_uids) - {""})
    labels: dict[str, StudyLabel] = {}
    for start in range(0, len(uids), PAGE_MAX):  # within SQLite's limit of parameters
        chunk = uids[start : start + PAGE_MAX]
        rows = database.execute_sql(
            "SELECT st.study_uid, p.name, st.description, st.study_date FROM study st"
            f" JOIN patient p ON p.id = st.patient_id WHERE st.study_uid IN ({', '.join('?' * len(chunk))})",
            chunk,
        )
        labels.update((uid, StudyLabel(*values)) for uid, *values in rows)
    return labels
