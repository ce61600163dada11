"""Which stored instances a C-MOVE or C-GET names.

A retrieve identifier carries unique keys only (PS3.4 C.4.2.1.4.1, C.4.3.1.3.1): a list of
UIDs (or Patient IDs) at the retrieve level, and the single unique key of each level above.
This is a lookup by those keys, not the C-FIND matcher.
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.archive.index import Instance, Patient, Series, Study
from appliance.archive.reading.rows import FILE_COLUMNS, InstanceFile

LEVEL_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
_COLUMNS = {
    "PatientID": Patient.patient_id,
    "StudyInstanceUID": Study.study_uid,
    "SeriesInstanceUID": Series.series_uid,
    "SOPInstanceUID": Instance.sop_uid,
}


def instances_for_retrieve(level: str, keys: dict[str, Sequence[str]]) -> list[InstanceFile]:
    """Instances under the ``level`` key values in ``keys``, narrowed by any higher-level key
    also given; in study, series and instance order.  ``keys`` maps DICOM keywords (the
    values of ``LEVEL_KEYS``) to values; the key of ``level`` itself must be there."""
    if level not in LEVEL_KEYS:
        raise ValueError(f"unknown Query/Retrieve Level {level!r}")
    if not keys.get(LEVEL_KEYS[level]):
        raise ValueError(f"{LEVEL_KEYS[level]} is required at {level} level")
    query = Instance.select(*FILE_COLUMNS).join(Series).join(Study).join(Patient)
    for keyword, values in keys.items():
        if values and keyword in _COLUMNS:
            query = query.where(_COLUMNS[keyword].in_(list(values)))
    query = query.order_by(
        Study.study_uid, Series.series_number, Series.series_uid, Instance.instance_number, Instance.sop_uid
    )
    return [InstanceFile(*row) for row in query.tuples()]
