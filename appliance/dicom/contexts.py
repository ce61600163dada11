"""What Lightbox accepts at negotiation: transfer syntaxes, storage-like classes (private and
retired ones included, which ultrasound units send) and the Query/Retrieve classes."""

from __future__ import annotations

from pydicom.uid import UID, AllTransferSyntaxes
from pynetdicom import sop_class
from pynetdicom.sop_class import _STORAGE_CLASSES

from appliance.archive import REFUSED_SYNTAXES

REFUSED = REFUSED_SYNTAXES | {"1.2.840.10008.1.2.4.205"}  # JPIP HTJ2K Referenced Deflate
# Retired JPEG processes (PS3.5 Table A-1 history): still sent by old equipment.
_RETIRED_JPEG = {f"1.2.840.10008.1.2.4.{n}" for n in (52, 53, 54, 55, 56, 58, 59, 60, 61, 62, 63, 64, 65, 66)}
ACCEPTED_SYNTAXES = frozenset(str(ts) for ts in AllTransferSyntaxes if str(ts) not in REFUSED) | _RETIRED_JPEG
_STORAGE_UIDS = frozenset(str(uid) for uid in _STORAGE_CLASSES.values())


def is_storage_like(uid: UID) -> bool:
    """A known storage class, or a private/unknown one (treated as storage, as modalities mean)."""
    return str(uid) in _STORAGE_UIDS or uid.is_private or not hasattr(sop_class, uid.keyword or "-")


RETRIEVE_CLASSES = frozenset(
    str(uid)
    for uid in (
        sop_class.PatientRootQueryRetrieveInformationModelMove,
        sop_class.StudyRootQueryRetrieveInformationModelMove,
        sop_class.PatientRootQueryRetrieveInformationModelGet,
        sop_class.StudyRootQueryRetrieveInformationModelGet,
    )
)

FIND_CLASSES = frozenset(
    str(uid)
    for uid in (
        sop_class.PatientRootQueryRetrieveInformationModelFind,
        sop_class.StudyRootQueryRetrieveInformationModelFind,
    )
)

QUERY_RETRIEVE_CLASSES = RETRIEVE_CLASSES | FIND_CLASSES
