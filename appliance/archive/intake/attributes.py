"""From a dataset header to the values kept in the index, level by level."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from appliance.archive.index import ITEM_KEYS
from appliance.archive.intake.charset import declared_charsets, normalise_name, text


@dataclass(frozen=True)
class IndexFields:
    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]


def _int_or_none(value: str) -> int | None:
    try:
        return int(str(value).split("\\")[0].strip())
    except ValueError:
        return None


def search_terms(species: str, breed: str, responsible_person: str) -> str:
    """The words besides name and IDs that the study list's search finds a patient by, folded
    like names (a vet practice looks an animal up by its owner, species or breed)."""
    return " ".join(folded for value in (species, breed, responsible_person) if (folded := normalise_name(value)))


def extract(ds: Dataset, charset_override: str | None = None, nonconformant_uids: Sequence[str] = ()) -> IndexFields:
    """The index's values of ``ds``; ``nonconformant_uids`` (from validate.check) are flagged."""
    charsets = declared_charsets(ds)

    def t(keyword: str) -> str:
        return text(ds, keyword, charsets, charset_override)

    patient_name = t("PatientName")
    referring = t("ReferringPhysicianName")
    species, breed, owner = t("PatientSpeciesDescription"), t("PatientBreedDescription"), t("ResponsiblePerson")
    return IndexFields(
        patient=dict(
            patient_id=t("PatientID"),
            issuer=t("IssuerOfPatientID"),
            name=patient_name,
            name_norm=normalise_name(patient_name),
            birth_date=t("PatientBirthDate"),
            sex=t("PatientSex"),
            species=species,
            breed=breed,
            responsible_person=owner,
            responsible_organization=t("ResponsibleOrganization"),
            search_terms=search_terms(species, breed, owner),
        ),
        study=dict(
            study_uid=t("StudyInstanceUID"),
            study_date=t("StudyDate"),
            study_time=t("StudyTime"),
            accession=t("AccessionNumber"),
            study_id=t("StudyID"),
            description=t("StudyDescription"),
            referring_physician=referring,
            referring_physician_norm=normalise_name(referring),
            institution=t("InstitutionName"),
            patient_age=t("PatientAge"),
            patient_size=t("PatientSize"),
            patient_weight=t("PatientWeight"),
            charset="\\".join(charsets),
            timezone_offset=t("TimezoneOffsetFromUTC"),
        ),
        series=dict(
            series_uid=t("SeriesInstanceUID"),
            modality=t("Modality"),
            series_number=_int_or_none(t("SeriesNumber")),
            series_number_text=t("SeriesNumber"),
            description=t("SeriesDescription"),
            body_part=t("BodyPartExamined"),
            laterality=t("Laterality"),
            series_date=t("SeriesDate"),
            series_time=t("SeriesTime"),
            protocol_name=t("ProtocolName"),
            station_name=t("StationName"),
            manufacturer=t("Manufacturer"),
            model_name=t("ManufacturerModelName"),
            request_attributes=_request_attributes(ds, charsets, charset_override),
            pps_start_date=t("PerformedProcedureStepStartDate"),
            pps_start_time=t("PerformedProcedureStepStartTime"),
        ),
        instance=dict(
            sop_uid=t("SOPInstanceUID"),
            sop_class_uid=t("SOPClassUID"),
            instance_number=_int_or_none(t("InstanceNumber")),
            instance_number_text=t("InstanceNumber"),
            content_date=t("ContentDate"),
            content_time=t("ContentTime"),
            acquisition_datetime=t("AcquisitionDateTime"),
            rows=_int_or_none(t("Rows")),
            columns=_int_or_none(t("Columns")),
            number_of_frames=_int_or_none(t("NumberOfFrames")),
            number_of_frames_text=t("NumberOfFrames"),
            bits_allocated=_int_or_none(t("BitsAllocated")),
            nonconformant_uids=",".join(nonconformant_uids),
        ),
    )


def _request_attributes(ds: Dataset, charsets: list[str], charset_override: str | None) -> str:
    """The Request Attributes Sequence as JSON, only the item keys C-FIND matches on ('' if none)."""
    items = []
    for item in ds.get("RequestAttributesSequence") or []:
        values = {kw: text(item, kw, charsets, charset_override) for kw in ITEM_KEYS}
        items.append({kw: v for kw, v in values.items() if v})
    return json.dumps(items, ensure_ascii=False) if items else ""
