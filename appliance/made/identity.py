"""The identity a made instance carries: the Patient, Patient Study and General Study modules'
attributes, copied as stored from an instance of the study (the files are the source of truth:
a corrected patient's files already say the corrected values)."""

from __future__ import annotations

import copy

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from appliance.archive import Archive

IDENTITY = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientSpeciesDescription",
    "PatientSpeciesCodeSequence", "PatientBreedDescription", "PatientBreedCodeSequence", "BreedRegistrationSequence",
    "ResponsiblePerson", "ResponsiblePersonRole", "ResponsibleOrganization", "PatientSexNeutered", "PatientAge",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
    "StudyDescription",
)  # fmt: skip
# Type 2 in those modules: present in every instance, empty when unknown.
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")  # fmt: skip
_TEXT_VRS = ("SH", "LO", "ST", "LT", "UT", "PN", "UC")
MAX_TRIED = 20  # stored instances whose header is tried before a study is said to have none readable


def copy_identity(source: Dataset, ds: Dataset) -> None:
    """Put ``source``'s identity attributes into ``ds`` (type 2 ones present even if empty)."""
    for keyword in IDENTITY:
        if keyword in source:
            value = source[keyword].value
            setattr(ds, keyword, copy.deepcopy(value) if source[keyword].VR == "SQ" else str(value))
    for keyword in _TYPE2:
        ds.setdefault(keyword, "")


def of_study(archive: Archive, study_uid: str) -> Dataset:
    """The identity attributes of a stored instance of ``study_uid`` (with its character set).
    LookupError when the study has no instance whose header can be read."""
    for n, stored in enumerate(archive.stored_instances(study_uid)):
        if n >= MAX_TRIED:
            break
        try:
            return pydicom.dcmread(
                archive.file_path(stored.file_key),
                stop_before_pixels=True,
                specific_tags=[*IDENTITY, "SpecificCharacterSet"],
            )
        except (InvalidDicomError, OSError, ValueError):
            continue  # `lightbox verify` names a damaged file; another instance says the same
    raise LookupError("no such study")


def text_charset(ds: Dataset) -> str:
    """Latin-1 when every text fits (what older viewers and DCMTK's checker read), else UTF-8."""
    try:
        for element in ds.iterall():
            if element.VR in _TEXT_VRS and element.value is not None:
                for value in element.value if element.VM > 1 else [element.value]:
                    str(value).encode("latin-1")
    except UnicodeEncodeError:
        return "ISO_IR 192"
    return "ISO_IR 100"
