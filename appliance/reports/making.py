"""A report as a Basic Text SR dataset (PS3.3 A.35.1; SR Document General module C.17.2).

The content tree is small and fixed: the title (18748-4, LN, "Diagnostic imaging report"), the
author as Person Observer Name (HAS OBS CONTEXT), and the text as one Findings item.  A draft is
PARTIAL and UNVERIFIED; a final report COMPLETE and VERIFIED, its author the verifying
observer and the clinic the organisation.  An amendment names the report it replaces in
Predecessor Documents Sequence.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pydicom.dataset import Dataset

from appliance import __version__
from appliance.made.identity import copy_identity, text_charset

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SERIES_NUMBER = 9100
SERIES_DESCRIPTION = "Report"
_SERIES_NAMESPACE = uuid.UUID("8a0f7e52-3c1d-4f0b-b1f4-6c2e9d7a5b30")  # Lightbox's, for report series
TITLE = ("18748-4", "LN", "Diagnostic imaging report")
OBSERVER = ("121008", "DCM", "Person Observer Name")
FINDINGS = ("121070", "DCM", "Findings")
MAX_EVIDENCE = 10_000  # instances listed as the report's evidence (a long CT study's, not an unbounded list)


@dataclass(frozen=True)
class Reference:
    """An instance of the study: the report's evidence or the report an amendment replaces."""

    series_uid: str
    sop_class: str
    sop_uid: str


@dataclass(frozen=True)
class Contents:
    text: str  # checked by ``text.check``
    author: str  # the account's name
    clinic: str
    final: bool
    predecessor: Reference | None  # the final report this one amends
    evidence: list[Reference]  # the study's instances the report is about


def series_uid_for(study_uid: str) -> str:
    """The series Lightbox keeps a study's report versions in (one per study)."""
    return "2.25." + str(uuid.uuid5(_SERIES_NAMESPACE, study_uid).int)


def make(contents: Contents, identity: Dataset, instance_number: int, now: datetime) -> Dataset:
    """``now``: an aware datetime in the clinic's zone."""
    ds = Dataset()
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = "2.25." + str(uuid.uuid4().int)
    ds.InstanceCreationDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.ContentTime = now.strftime("%H%M%S.%f")  # two saves a second stay ordered
    ds.TimezoneOffsetFromUTC = now.strftime("%z")
    copy_identity(identity, ds)
    study_uid = str(ds.StudyInstanceUID)
    ds.Modality = "SR"
    ds.SeriesInstanceUID = series_uid_for(study_uid)
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.Manufacturer = "Lightbox"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = instance_number
    ds.CompletionFlag = "COMPLETE" if contents.final else "PARTIAL"
    ds.VerificationFlag = "VERIFIED" if contents.final else "UNVERIFIED"
    ds.PreliminaryFlag = "FINAL" if contents.final else "PRELIMINARY"
    author = _person(contents.author)
    if contents.final:
        ds.VerifyingObserverSequence = [_item(
            VerifyingObserverName=author, VerifyingObserverIdentificationCodeSequence=[],
            VerifyingOrganization=contents.clinic[:64] or "Lightbox", VerificationDateTime=now.strftime("%Y%m%d%H%M%S.%f%z"),
        )]  # fmt: skip
    if contents.predecessor is not None:
        ds.PredecessorDocumentsSequence = _hierarchy(study_uid, [contents.predecessor])
    ds.PerformedProcedureCodeSequence = []
    if contents.evidence:  # required of a COMPLETE report; listed for a draft too
        ds.CurrentRequestedProcedureEvidenceSequence = _hierarchy(study_uid, contents.evidence[:MAX_EVIDENCE])
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code(*TITLE)]
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentSequence = [
        _item(RelationshipType="HAS OBS CONTEXT", ValueType="PNAME", ConceptNameCodeSequence=[_code(*OBSERVER)],
              PersonName=author),
        _item(RelationshipType="CONTAINS", ValueType="TEXT", ConceptNameCodeSequence=[_code(*FINDINGS)],
              TextValue=contents.text),
    ]  # fmt: skip
    ds.SpecificCharacterSet = text_charset(ds)
    return ds


def _person(account: str) -> str:
    """An account name as a PN: its family name component (no ^ or = of its own)."""
    return account.replace("^", " ").replace("=", " ").replace("\\", "/")[:64]


def _hierarchy(study_uid: str, refs: list[Reference]) -> list[Dataset]:
    """The Hierarchical SOP Instance Reference Macro (PS3.3 C.17.2.1): a study, its series, their instances."""
    by_series: dict[str, list[Reference]] = {}
    for ref in refs:
        by_series.setdefault(ref.series_uid, []).append(ref)
    return [_item(StudyInstanceUID=study_uid, ReferencedSeriesSequence=[
        _item(SeriesInstanceUID=series_uid, ReferencedSOPSequence=[
            _item(ReferencedSOPClassUID=r.sop_class, ReferencedSOPInstanceUID=r.sop_uid) for r in members])
        for series_uid, members in by_series.items()])]  # fmt: skip


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    return _item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item
