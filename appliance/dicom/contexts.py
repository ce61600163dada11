"""Presentation contexts, negotiated per association from what the peer proposes.

Building contexts only for the abstract syntaxes a peer actually proposes keeps association
set-up cheap (a table of every storage class times every syntax costs ~70 ms per association)
and lets us accept private and retired storage classes, which ultrasound units send.
"""

from __future__ import annotations

from pydicom.uid import UID, AllTransferSyntaxes
from pynetdicom import sop_class
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import _STORAGE_CLASSES, Verification

from appliance.archive.validate import REFUSED_SYNTAXES

REFUSED = REFUSED_SYNTAXES | {"1.2.840.10008.1.2.4.205"}  # JPIP HTJ2K Referenced Deflate
# Retired JPEG processes (PS3.5 Table A-1 history): still sent by old equipment.
_RETIRED_JPEG = {f"1.2.840.10008.1.2.4.{n}" for n in (52, 53, 54, 55, 56, 58, 59, 60, 61, 62, 63, 64, 65, 66)}
ACCEPTED_SYNTAXES = frozenset(str(ts) for ts in AllTransferSyntaxes if str(ts) not in REFUSED) | _RETIRED_JPEG
_STORAGE_UIDS = frozenset(str(uid) for uid in _STORAGE_CLASSES.values())


def is_storage_like(uid: UID) -> bool:
    """A known storage class, or a private/unknown one (treated as storage, as modalities mean)."""
    return str(uid) in _STORAGE_UIDS or uid.is_private or not hasattr(sop_class, uid.keyword or "-")


def acceptable_contexts(proposed: list[PresentationContext], services: frozenset[str]) -> list[PresentationContext]:
    """Contexts to support for this association, keeping the peer's order of syntaxes.

    ``services`` holds the non-storage abstract syntaxes this server implements.
    """
    supported = []
    seen: set[str] = set()
    for cx in proposed:
        abstract = UID(str(cx.abstract_syntax))
        if str(abstract) in seen or not (str(abstract) in services or is_storage_like(abstract)):
            continue
        syntaxes = [ts for ts in cx.transfer_syntax if str(ts) in ACCEPTED_SYNTAXES]
        if not syntaxes:
            continue
        seen.add(str(abstract))
        context = PresentationContext()
        context.abstract_syntax = abstract
        context.transfer_syntax = syntaxes
        supported.append(context)
    return supported


SERVICES = frozenset({str(Verification)})
