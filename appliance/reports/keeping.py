"""A study's report versions in the archive, and the one way to add one.

Every version is a Basic Text SR instance in the study's report series (``making``), stored
through the archive's ingest.  Drafts are kept as DICOM too, but only the newest: saving a draft
again stores a new instance and deletes the draft it replaces through the archive's deletion
(audited, in the change log).  A final report is never replaced: changing it is an amendment, a
new instance naming it as predecessor, and both stay.  The newest version is the current one.

Every save names the version it was edited from (``base``); a save from any other is a
``Conflict``: two people editing one draft cannot overwrite each other unseen.  Saves are
serialised in this process by one lock (the web server is the only writer of reports).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from appliance.archive import Archive, CorrectionError, Origin
from appliance.made.identity import of_study
from appliance.made.storing import store
from appliance.reports.making import BASIC_TEXT_SR, Contents, Reference, make, series_uid_for

LOG = logging.getLogger("lightbox.reports")
MAX_VERSIONS = 200  # the newest read; a report amended more often than that is not a real one
MAX_FILE_BYTES = 8 << 20
_TAGS = ["SOPInstanceUID", "InstanceNumber", "SpecificCharacterSet", "CompletionFlag", "VerificationFlag",
         "VerifyingObserverSequence", "PredecessorDocumentsSequence", "ContentDate", "ContentTime",
         "TimezoneOffsetFromUTC", "ContentSequence"]  # fmt: skip
_LOCK = threading.Lock()


class Conflict(Exception):
    """The save does not follow the current version; the message says what happened."""


@dataclass(frozen=True)
class Version:
    sop_uid: str
    series_uid: str
    instance_number: int
    final: bool
    author: str  # the Person Observer Name: the account that saved it
    date: str  # ContentDate, ContentTime and offset, as stored
    time: str
    offset: str
    amends: str  # the SOP Instance UID of the final report it replaces, "" for none
    text: str  # with \n line breaks

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def versions(archive: Archive, study_uid: str) -> list[Version]:
    """The study's report versions, oldest first (an unreadable one is left out and logged)."""
    series = archive.series_entry(series_uid_for(study_uid))
    if series is None:
        return []
    found = []
    for entry in [i for i in series.instances if i.sop_class == BASIC_TEXT_SR][-MAX_VERSIONS:]:
        try:
            path = archive.file_path(entry.file_key)
            if os.stat(path).st_size > MAX_FILE_BYTES:
                raise ValueError("larger than a report Lightbox makes")
            found.append(_version(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS),
                                  str(series.series["uid"])))  # fmt: skip
        except (InvalidDicomError, OSError, ValueError, TypeError, struct.error, EOFError, KeyError) as exc:
            LOG.warning("report_unreadable sop=%s error=%s", entry.sop_uid, exc)
    return sorted(found, key=lambda v: v.instance_number)


def save(archive: Archive, study_uid: str, text: str, final: bool, amend: bool, base: str, author: str,
         address: str, now: datetime) -> Version:  # fmt: skip
    """Store ``text`` (checked by ``text.check``) as the study's new current version.  LookupError
    for an unknown study, Conflict when ``base`` is not the current version or the current one is
    final and ``amend`` is not said; ``storing.NotStored`` when ingest refuses it."""
    with _LOCK:
        detail = archive.study_detail(study_uid)
        if detail is None:
            raise LookupError("no such study")
        current = _current(archive, study_uid, base)
        if current is not None and current.final and not amend:
            raise Conflict("this report is final: it can be amended, not changed")
        report_series = series_uid_for(study_uid)
        # An amendment names the final it replaces; a draft of one keeps naming it.
        amends = current.sop_uid if current is not None and current.final else current.amends if current else ""
        evidence = [Reference(s.series_uid, i.sop_class_uid, i.sop_uid) for s in detail.series
                    if s.series_uid != report_series for i in s.instances]  # fmt: skip
        numbers = [i.instance_number or 0 for s in detail.series if s.series_uid == report_series for i in s.instances]
        contents = Contents(text, author, archive.site.get().clinic_name, final,
                      Reference(report_series, BASIC_TEXT_SR, amends) if amends else None, evidence)  # fmt: skip
        ds = make(contents, of_study(archive, study_uid), max(numbers, default=0) + 1, now)
        store(archive, ds, Origin("webui", address=address, user=author))
        if current is not None and not current.final:
            _delete_draft(archive, current, author, address)
        return _version(ds, report_series)


def discard(archive: Archive, study_uid: str, base: str, user: str, address: str) -> Version:
    """Delete the current draft (named by ``base``); the version it was."""
    with _LOCK:
        current = _current(archive, study_uid, base)
        if current is None or current.final:
            raise Conflict("there is no draft to discard")
        _delete_draft(archive, current, user, address)
        return current


def _current(archive: Archive, study_uid: str, base: str) -> Version | None:
    """The current version, if ``base`` names it (or names none and there is none)."""
    found = versions(archive, study_uid)
    current = found[-1] if found else None
    if (current.sop_uid if current is not None else "") != base:
        if current is None:
            raise Conflict("the report you edited is gone (its draft was discarded); reload the page")
        d, t = current.date, current.time
        raise Conflict(f"{current.author} saved this report ({'final' if current.final else 'draft'}, "
                       f"{d[:4]}-{d[4:6]}-{d[6:8]} {t[:2]}:{t[2:4]}) since you opened it; copy your text, "
                       "reload to see their version and add yours to it")  # fmt: skip
    return current


def _delete_draft(archive: Archive, draft: Version, user: str, address: str) -> None:
    target = archive.describe("instance", draft.sop_uid)
    if target is None:
        return
    try:
        archive.corrections.delete("instance", draft.sop_uid, target.confirmation, user, address)
    except (CorrectionError, LookupError) as exc:  # the new version is current anyway: log and carry on
        LOG.error("report_draft_not_deleted sop=%s error=%s", draft.sop_uid, exc)


def _version(ds: Dataset, series_uid: str) -> Version:
    items = {str(i.ConceptNameCodeSequence[0].CodeValue): i for i in ds.get("ContentSequence") or []
             if i.get("ConceptNameCodeSequence")}  # fmt: skip
    predecessors = [sop for study in ds.get("PredecessorDocumentsSequence") or []
                    for series in study.get("ReferencedSeriesSequence") or []
                    for sop in series.get("ReferencedSOPSequence") or []]  # fmt: skip
    observer = items.get("121008")
    text = items.get("121070")
    return Version(
        sop_uid=str(ds.SOPInstanceUID),
        series_uid=series_uid,
        instance_number=int(ds.get("InstanceNumber") or 0),
        final=ds.get("CompletionFlag") == "COMPLETE" and ds.get("VerificationFlag") == "VERIFIED",
        author=str(observer.get("PersonName", "")) if observer is not None else "",
        date=str(ds.get("ContentDate", "")),
        time=str(ds.get("ContentTime", "")),
        offset=str(ds.get("TimezoneOffsetFromUTC", "")),
        amends=str(predecessors[-1].get("ReferencedSOPInstanceUID", "")) if predecessors else "",
        text=str(text.get("TextValue", "")).replace("\r\n", "\n") if text is not None else "",
    )
