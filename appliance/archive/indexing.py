"""Writing rows of the index.  Every function here runs inside the archive's write lock and
one transaction; ingest, replace and rebuild-index share them, so counts stay right."""

from __future__ import annotations

import logging
import time

from pydicom.dataset import FileMetaDataset

from appliance.archive.attributes import IndexFields
from appliance.archive.index import Change, Incident, Instance, Patient, Series, Study
from appliance.archive.storage import StoredFile

LOG = logging.getLogger("lightbox.index")


def provenance(meta: FileMetaDataset) -> dict[str, str]:
    """Calling/called AE and source address, read back from the stored file's meta header."""
    return dict(
        calling_ae=str(meta.get("SendingApplicationEntityTitle", "") or "").strip(),
        called_ae=str(meta.get("ReceivingApplicationEntityTitle", "") or "").strip(),
        source_address=str(meta.get("SourcePresentationAddress", "") or "").strip(),
    )


def record_change(kind: str, study_uid: str = "", series_uid: str = "", sop_uid: str = "") -> None:
    Change.create(kind=kind, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid, at=time.time())


def record_incident(kind: str, detail: str, sop_uid: str = "", calling_ae: str = "", source_address: str = "") -> None:
    Incident.create(
        at=time.time(),
        kind=kind,
        detail=detail,
        sop_uid=sop_uid,
        calling_ae=calling_ae,
        source_address=source_address,
    )


def add_instance(
    fields: IndexFields, stored: StoredFile, transfer_syntax: str, origin: dict[str, str], received_at: float
) -> Instance:
    """Index one stored instance whose SOP Instance UID is not in the index yet."""
    study = Study.get_or_none(Study.study_uid == fields.study["study_uid"])
    if study is None:
        patient = _patient_for(fields)
        study = Study.create(
            patient=patient, first_received_at=received_at, last_received_at=received_at, **fields.study
        )
        patient.num_studies += 1
    else:
        patient = study.patient
        if not _same_identity(patient, fields.patient):
            if not study.patient_mismatch:
                LOG.warning("patient_mismatch study_id=%s sop=%s", study.id, fields.instance["sop_uid"])
                record_incident(
                    "patient_mismatch",
                    "an instance names another patient than its study",
                    fields.instance["sop_uid"],
                    origin["calling_ae"],
                )
            study.patient_mismatch = True
    series = Series.get_or_none(Series.series_uid == fields.series["series_uid"])
    if series is None:
        series = Series.create(study=study, last_received_at=received_at, **fields.series)
        study.num_series += 1
        patient.num_series += 1
        study.modalities = _modalities(study)
    instance = Instance.create(
        series=series,
        transfer_syntax=transfer_syntax,
        file_key=stored.key,
        size=stored.size,
        sha256=stored.sha256,
        received_at=received_at,
        **fields.instance,
        **origin,
    )
    series.num_instances += 1
    study.num_instances += 1
    patient.num_instances += 1
    series.last_received_at = max(series.last_received_at, received_at)
    study.last_received_at = max(study.last_received_at, received_at)
    study.stable = False
    for row in (series, study, patient):
        row.save()
    record_change("instance_stored", study.study_uid, series.series_uid, instance.sop_uid)
    return instance


def remove_instance(instance: Instance, change_kind: str = "instance_deleted") -> None:
    """Drop one instance's row, its emptied parents, and keep every count right."""
    series = instance.series
    study = series.study
    patient = study.patient
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
    record_change(change_kind, study.study_uid, series.series_uid, instance.sop_uid)


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


def _modalities(study: Study) -> str:
    found = {m for (m,) in Series.select(Series.modality).where(Series.study == study).tuples() if m}
    return "\\".join(sorted(found))


def _identity(values: dict) -> tuple[str, str, str, str]:
    return (values["patient_id"], values["issuer"], values["name_norm"], values["birth_date"])


def _same_identity(patient: Patient, values: dict) -> bool:
    return (patient.patient_id, patient.issuer, patient.name_norm, patient.birth_date) == _identity(values)


def _patient_for(fields: IndexFields) -> Patient:
    """The Patient row for this identity; a new identity under a known Patient ID is kept
    apart and flagged on every row that shares the ID."""
    values = fields.patient
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
    if patient_id:
        same_id = Patient.select().where((Patient.patient_id == patient_id) & (Patient.issuer == issuer))
        if same_id.count() > 1:
            Patient.update(identity_conflict=True).where(
                (Patient.patient_id == patient_id) & (Patient.issuer == issuer)
            ).execute()
            patient.identity_conflict = True
            LOG.warning("patient_identity_conflict patient_row=%s rows=%d", patient.id, same_id.count())
            record_incident(
                "identity_conflict",
                f"Patient ID shared by {same_id.count()} identities (name or birth date differ)",
                fields.instance["sop_uid"],
            )
    return patient
