"""Writing rows of the index.  Every function here runs inside the archive's write lock and
one transaction; ingest, replace and rebuild-index share them, so counts stay right."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from peewee import Model

from appliance.archive.index import Change, Incident, Instance, Patient, Series, Study, database
from appliance.archive.intake.attributes import IndexFields
from appliance.archive.storage import StoredFile

LOG = logging.getLogger("lightbox.index")


def provenance(meta: Mapping[str, Any]) -> dict[str, str]:
    """Calling/called AE and source address, read back from the stored file's meta header."""
    return dict(
        calling_ae=str(meta.get("SendingApplicationEntityTitle", "") or "").strip(),
        called_ae=str(meta.get("ReceivingApplicationEntityTitle", "") or "").strip(),
        source_address=str(meta.get("SourcePresentationAddress", "") or "").strip(),
    )


def record_change(kind: str, study_uid: str = "", series_uid: str = "", sop_uid: str = "") -> int:
    """Append to the change log; return the change's sequence number."""
    return _insert(Change, dict(kind=kind, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid, at=time.time()))


def record_incident(kind: str, detail: str, sop_uid: str = "", calling_ae: str = "", source_address: str = "") -> None:
    Incident.create(
        at=time.time(),
        kind=kind,
        detail=detail,
        sop_uid=sop_uid,
        calling_ae=calling_ae,
        source_address=source_address,
    )


def _sql(query: str, params: tuple = ()) -> Any:
    return database.execute_sql(query, params)


_DEFAULTS: dict[str, dict[str, Any]] = {}  # by table


def _defaults(model: type[Model]) -> dict[str, Any]:
    """Column defaults that peewee applies in Python (the tables have no SQL DEFAULTs)."""
    table = model._meta.table_name
    if table not in _DEFAULTS:
        _DEFAULTS[table] = {
            f.column_name: f.default
            for f in model._meta.sorted_fields
            if f.default is not None and not callable(f.default)
        }
    return _DEFAULTS[table]


def _insert(model: type[Model], values: dict[str, Any]) -> int:
    row = {**_defaults(model), **values}
    columns = ", ".join(f'"{c}"' for c in row)
    marks = ", ".join("?" * len(row))
    return _sql(f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES ({marks})', tuple(row.values())).lastrowid


def file_key_of(sop_uid: str) -> str | None:
    """Where the instance with this SOP Instance UID is stored, if it is."""
    row = _sql("SELECT file_key FROM instance WHERE sop_uid = ?", (sop_uid,)).fetchone()
    return row[0] if row else None


def add_instance(
    fields: IndexFields, stored: StoredFile, transfer_syntax: str, origin: dict[str, str], received_at: float
) -> bool:
    """Index one stored instance whose SOP Instance UID is not in the index yet; True when
    it began a new study.

    Plain SQL: this runs once per received image, and building peewee queries for these wide
    rows cost several milliseconds per instance.
    """
    study_uid = fields.study["study_uid"]
    sop_uid = fields.instance["sop_uid"]
    found = _sql(
        "SELECT s.id, s.patient_id, s.patient_mismatch, p.patient_id, p.issuer, p.name_norm, p.birth_date"
        " FROM study s JOIN patient p ON p.id = s.patient_id WHERE s.study_uid = ?",
        (study_uid,),
    ).fetchone()
    if found is None:
        patient_id = patient_for(fields.patient, sop_uid).id
        study_id = _insert(
            Study,
            dict(fields.study, patient_id=patient_id, first_received_at=received_at, last_received_at=received_at),
        )
        _sql("UPDATE patient SET num_studies = num_studies + 1 WHERE id = ?", (patient_id,))
    else:
        study_id, patient_id, mismatch, *identity = found
        if tuple(identity) != _identity(fields.patient) and not mismatch:
            LOG.warning("patient_mismatch study_row=%s sop=%s", study_id, sop_uid)
            record_incident(
                "patient_mismatch", "an instance names another patient than its study", sop_uid, origin["calling_ae"]
            )
            _sql("UPDATE study SET patient_mismatch = 1 WHERE id = ?", (study_id,))
    series = _sql("SELECT id FROM series WHERE series_uid = ?", (fields.series["series_uid"],)).fetchone()
    if series is None:
        series_id = _insert(Series, dict(fields.series, study_id=study_id, last_received_at=received_at))
    else:
        (series_id,) = series
    new_series = int(series is None)
    _insert(
        Instance,
        dict(
            fields.instance,
            **origin,
            series_id=series_id,
            transfer_syntax=transfer_syntax,
            file_key=stored.key,
            size=stored.size,
            sha256=stored.sha256,
            received_at=received_at,
        ),
    )
    _sql(
        "UPDATE series SET num_instances = num_instances + 1, last_received_at = MAX(last_received_at, ?) WHERE id = ?",
        (received_at, series_id),
    )
    _sql(
        "UPDATE study SET num_instances = num_instances + 1, num_series = num_series + ?, stable = 0,"
        " last_received_at = MAX(last_received_at, ?) WHERE id = ?",
        (new_series, received_at, study_id),
    )
    _sql(
        "UPDATE patient SET num_instances = num_instances + 1, num_series = num_series + ? WHERE id = ?",
        (new_series, patient_id),
    )
    if new_series:
        _sql("UPDATE study SET modalities = ? WHERE id = ?", (_modalities(study_id), study_id))
    record_change("instance_stored", study_uid, fields.series["series_uid"], sop_uid)
    return found is None


def remove_instance(instance: Instance, change_kind: str = "instance_deleted") -> int:
    """Drop one instance's row, its emptied parents, and keep every count right; return the
    sequence number of the change recorded."""
    # Read the parents afresh: rows loaded with the instance (a join) may hold counts that an
    # earlier removal in this transaction has already changed.
    series = Series.get_by_id(instance.series_id)
    study = Study.get_by_id(series.study_id)
    patient = Patient.get_by_id(study.patient_id)
    instance.delete_instance()
    series.num_instances -= 1
    study.num_instances -= 1
    patient.num_instances -= 1
    if series.num_instances == 0:
        series.delete_instance()
        study.num_series -= 1
        patient.num_series -= 1
        study.modalities = _modalities(study)
    else:
        series.save()
    if study.num_instances == 0:
        study.delete_instance()
        patient.num_studies -= 1
    else:
        study.save()
    if patient.num_studies == 0:
        patient.delete_instance()
    else:
        patient.save()
    return record_change(change_kind, study.study_uid, series.series_uid, instance.sop_uid)


def mark_stable(older_than: float) -> list[str]:
    """Mark studies whose last instance came before ``older_than`` stable; return their UIDs."""
    uids = [
        s.study_uid
        for s in Study.select(Study.study_uid).where(
            (Study.stable == False) & (Study.last_received_at <= older_than)  # noqa: E712
        )
    ]
    for uid in uids:
        Study.update(stable=True).where(Study.study_uid == uid).execute()
        record_change("study_stable", uid)
    return uids


def _modalities(study: Study | int) -> str:
    found = {m for (m,) in Series.select(Series.modality).where(Series.study == study).tuples() if m}
    return "\\".join(sorted(found))


def _identity(values: dict) -> tuple[str, str, str, str]:
    return (values["patient_id"], values["issuer"], values["name_norm"], values["birth_date"])


def patient_for(values: dict, sop_uid: str) -> Patient:
    """The Patient row for this identity; a new identity under a known Patient ID is kept
    apart and flagged on every row that shares the ID (``sop_uid`` names the instance that
    brought it, for the incident)."""
    patient_id, issuer, name_norm, birth_date = _identity(values)
    patient = Patient.get_or_none(
        (Patient.patient_id == patient_id)
        & (Patient.issuer == issuer)
        & (Patient.name_norm == name_norm)
        & (Patient.birth_date == birth_date)
    )
    if patient is not None:
        return patient
    patient = Patient.create(**values)
    rows = flag_identity_conflicts(patient_id, issuer)
    if rows > 1:
        patient.identity_conflict = True
        LOG.warning("patient_identity_conflict patient_row=%s rows=%d", patient.id, rows)
        record_incident(
            "identity_conflict", f"Patient ID shared by {rows} identities (name or birth date differ)", sop_uid
        )
    return patient


def flag_identity_conflicts(patient_id: str, issuer: str) -> int:
    """Flag (or unflag) every identity that shares this Patient ID; return how many there are."""
    if not patient_id:
        return 0
    same_id = (Patient.patient_id == patient_id) & (Patient.issuer == issuer)
    rows = Patient.select().where(same_id).count()
    Patient.update(identity_conflict=rows > 1).where(same_id).execute()
    return rows
