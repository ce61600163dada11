"""The syntaxes the rows of the service table (``services.py``) name: the transfer syntaxes
accepted for datasets and for identifiers, and the abstract syntaxes (SOP classes) of the
services — storage's being every storage-like class, private and retired ones included, which
ultrasound units send (C-FIND's are the models ``find.py`` knows)."""

from __future__ import annotations

from pydicom.uid import UID, AllTransferSyntaxes, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import sop_class
from pynetdicom.sop_class import _STORAGE_CLASSES

from appliance.archive import REFUSED_SYNTAXES

EXPLICIT_LE, IMPLICIT_LE = str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)

REFUSED = REFUSED_SYNTAXES | {"1.2.840.10008.1.2.4.205"}  # JPIP HTJ2K Referenced Deflate
# Retired JPEG processes (PS3.5 Table A-1 history): still sent by old equipment.
_RETIRED_JPEG = {f"1.2.840.10008.1.2.4.{n}" for n in (52, 53, 54, 55, 56, 58, 59, 60, 61, 62, 63, 64, 65, 66)}
ACCEPTED_SYNTAXES = frozenset(str(ts) for ts in AllTransferSyntaxes if str(ts) not in REFUSED) | _RETIRED_JPEG
IDENTIFIER_SYNTAXES = frozenset({IMPLICIT_LE, EXPLICIT_LE})  # what a request's identifier is read in

VERIFICATION_CLASS = "1.2.840.10008.1.1"
VERIFICATION = frozenset({VERIFICATION_CLASS})
MOVE = frozenset({"1.2.840.10008.5.1.4.1.2.1.2", "1.2.840.10008.5.1.4.1.2.2.2"})  # Patient Root, Study Root
GET = frozenset({"1.2.840.10008.5.1.4.1.2.1.3", "1.2.840.10008.5.1.4.1.2.2.3"})  # Patient Root, Study Root

_STORAGE_UIDS = frozenset(str(uid) for uid in _STORAGE_CLASSES.values())


class StorageLike:
    """Every storage class: a known one, or a private or unknown one (treated as storage, as
    modalities mean it).  A container, like the other services' sets of classes."""

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, str):
            return False
        known = UID(uid)
        return uid in _STORAGE_UIDS or known.is_private or not hasattr(sop_class, known.keyword or "-")


STORAGE = StorageLike()
