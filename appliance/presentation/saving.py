"""Presentation states kept in the archive: made through its ingest, found by the series they show.

A state is stored through ``appliance.made.storing`` (the archive's ingest, like any received
file).  States are found among the study's instances of a presentation state class by reading
each one's Referenced Series Sequence (at most ``MAX_LISTED`` states of a study are read).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import pydicom

from appliance.archive import Archive, Origin, kinds
from appliance.made.storing import store
from appliance.presentation import reading
from appliance.presentation.description import MAX_IMAGES, Description, DescriptionError
from appliance.presentation.making import PRESENTATION_STATES, SOURCE_TAGS, Image, Source, make

LOG = logging.getLogger("lightbox.presentation")
MAX_LISTED = 500


def save(archive: Archive, series_uid: str, description: Description, creator: str, address: str) -> str:
    """Make the state for ``series_uid``, store it; its SOP Instance UID.  LookupError for an
    unknown series (or one without images), DescriptionError for a state that cannot be made."""
    source = _source(archive, series_uid, description)
    study_uid = str(source.first.StudyInstanceUID)
    number = sum(1 for _ in archive.stored_instances(study_uid, PRESENTATION_STATES)) + 1
    ds = make(description, source, creator, number, datetime.now())
    return store(archive, ds, Origin("webui", address=address, user=creator))


def listing(archive: Archive, series_uid: str) -> list[dict[str, Any]] | None:
    """The states that show ``series_uid``, newest first; None for an unknown series."""
    study_uid = archive.study_of_series(series_uid)
    if study_uid is None:
        return None
    found = []
    for n, stored in enumerate(archive.stored_instances(study_uid, PRESENTATION_STATES)):
        if n >= MAX_LISTED:
            LOG.warning("presentation_states_not_all_listed study=%s listed=%d", study_uid, MAX_LISTED)
            break
        try:
            ds = reading.read(archive.file_path(stored.file_key), summary=True)
        except (reading.PresentationError, OSError) as exc:
            LOG.warning("presentation_state_unreadable sop=%s error=%s", stored.sop_uid, exc)
            continue
        if series_uid in reading.references(ds):
            found.append(reading.summary(ds))
    found.sort(key=lambda s: (s["creation_date"], s["creation_time"]), reverse=True)
    return found


def load(archive: Archive, sop_uid: str) -> dict[str, Any] | None:
    """One state as JSON; None when ``sop_uid`` is no stored presentation state."""
    stored = archive.stored_instance(sop_uid)
    if stored is None or not stored.sop_class_uid.startswith(PRESENTATION_STATES):
        return None
    return reading.describe(reading.read(archive.file_path(stored.file_key)))


def _source(archive: Archive, series_uid: str, description: Description) -> Source:
    entry = archive.series_entry(series_uid)
    if entry is None:
        raise LookupError("no such series")
    images = [i for i in entry.instances if i.kind == kinds.IMAGE]
    if not images:
        raise LookupError("the series holds no images")
    for ref in description.images:
        if ref.series_uid and ref.series_uid != series_uid:
            raise DescriptionError(f"images: {ref.sop_uid} is said to be of another series")
    wanted = {ref.sop_uid for ref in description.images}
    known = {i.sop_uid for i in images}
    unknown = sorted(wanted - known)
    if unknown:
        raise DescriptionError(f"images: {unknown[0]} is no image of this series")
    chosen = [i for i in images if not wanted or i.sop_uid in wanted]
    if len(chosen) > MAX_IMAGES:  # each one's header is read: the bound of a named list holds here too
        raise DescriptionError(f"images: the series has over {MAX_IMAGES} images; name the ones the state is for")
    headers = [pydicom.dcmread(archive.file_path(i.file_key), stop_before_pixels=True, specific_tags=SOURCE_TAGS)
               for i in chosen]  # fmt: skip
    photometric = {_gray(str(h.get("PhotometricInterpretation", ""))) for h in headers}
    if len(photometric) > 1:
        raise DescriptionError("images: grayscale and colour images together; save a state for each")
    return Source(
        series_uid,
        [Image(i.sop_uid, i.sop_class, i.frames, i.rows or 0, i.columns or 0) for i in chosen],
        headers[0],
        {(_number(h, "RescaleSlope", 1.0), _number(h, "RescaleIntercept", 0.0), str(h.get("RescaleType", "")).strip())
         for h in headers},
    )  # fmt: skip


def _gray(photometric: str) -> bool:
    return photometric.upper().startswith("MONOCHROME")


def _number(ds: pydicom.Dataset, keyword: str, default: float) -> float:
    try:
        return float(ds.get(keyword, default))
    except (TypeError, ValueError):  # an unreadable rescale: as if none
        return default
