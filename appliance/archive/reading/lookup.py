"""Read-only lookups for display: where an instance's file is, what a series holds."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.archive.index import Instance, Patient, Series, Study
from appliance.archive.reading import kinds


@dataclass(frozen=True)
class InstanceEntry:
    sop_uid: str
    series_uid: str
    instance_number: int | None
    frames: int
    rows: int | None
    columns: int | None
    transfer_syntax: str
    file_key: str
    kind: str  # see kinds.py
    sop_class: str = ""


@dataclass(frozen=True)
class SeriesEntry:
    """A series with its study and patient, and its instances in display order."""

    series: dict[str, object]
    study: dict[str, object]
    patient: dict[str, object]
    instances: list[InstanceEntry]


_INSTANCE_COLUMNS = (
    Instance.sop_uid, Series.series_uid, Instance.instance_number, Instance.number_of_frames,
    Instance.rows, Instance.columns, Instance.transfer_syntax, Instance.file_key, Instance.sop_class_uid,
)  # fmt: skip
# The instances a frame can be rendered from: pixels, and not a video stream.
_HAS_FRAMES = Instance.rows.is_null(False) & Instance.transfer_syntax.not_in(list(kinds.VIDEO_SYNTAXES))


def _entry(row: tuple) -> InstanceEntry:
    sop_uid, series_uid, number, frames, rows, columns, syntax, key, sop_class = row
    kind = kinds.instance_kind(sop_class, syntax, rows is not None)
    return InstanceEntry(sop_uid, series_uid, number, max(frames or 1, 1), rows, columns, syntax, key, kind, sop_class)


def instance(sop_uid: str) -> InstanceEntry | None:
    row = Instance.select(*_INSTANCE_COLUMNS).join(Series).where(Instance.sop_uid == sop_uid).tuples().first()
    return _entry(row) if row else None


_DISPLAY_ORDER = (Instance.instance_number.asc(nulls="LAST"), Instance.sop_uid)


def middle_instance(series_uid: str) -> InstanceEntry | None:
    """The image halfway through a series in display order (a series' thumbnail), without
    listing the series; videos, documents and reports are passed over."""
    in_series = Instance.select(*_INSTANCE_COLUMNS).join(Series).where((Series.series_uid == series_uid) & _HAS_FRAMES)
    count = in_series.count()
    if not count:
        return None
    row = in_series.order_by(*_DISPLAY_ORDER).offset(count // 2).limit(1).tuples().first()
    return _entry(row) if row else None


def series(series_uid: str) -> SeriesEntry | None:
    found = (
        Series.select(Series, Study, Patient).join(Study).join(Patient).where(Series.series_uid == series_uid).first()
    )
    if found is None:
        return None
    rows = (
        Instance.select(*_INSTANCE_COLUMNS).join(Series).where(Series.id == found.id).order_by(*_DISPLAY_ORDER).tuples()
    )
    study, patient = found.study, found.study.patient
    return SeriesEntry(
        series={
            "uid": found.series_uid,
            "modality": found.modality,
            "number": found.series_number,
            "description": found.description,
            "body_part": found.body_part,
        },  # fmt: skip
        study={
            "uid": study.study_uid,
            "date": study.study_date,
            "time": study.study_time,
            "description": study.description,
            "accession": study.accession,
            "institution": study.institution,
        },  # fmt: skip
        patient={
            "name": patient.name,
            "id": patient.patient_id,
            "birth_date": patient.birth_date,
            "sex": patient.sex,
            "species": patient.species,
        },  # fmt: skip
        instances=[_entry(row) for row in rows],
    )
