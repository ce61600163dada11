"""Presentation contexts, negotiated per association from what the peer proposes.

Building contexts only for the abstract syntaxes a peer actually proposes keeps association
set-up cheap (a table of every storage class times every syntax costs ~70 ms per association)
and lets us accept private and retired storage classes, which ultrasound units send.
"""

from __future__ import annotations

from typing import Type

from pydicom.uid import UID, AllTransferSyntaxes
from pynetdicom import association, sop_class
from pynetdicom.presentation import PresentationContext
from pynetdicom.service_class import ServiceClass, StorageServiceClass
from pynetdicom.sop_class import _STORAGE_CLASSES, Verification, uid_to_service_class

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

    ``services`` holds the non-storage abstract syntaxes this server implements.  A peer may
    propose one abstract syntax in several contexts (one per transfer syntax, as DCMTK does):
    the supported context for it takes the union, in the order first proposed.
    """
    syntaxes_by_abstract: dict[str, list[str]] = {}
    for cx in proposed:
        abstract = UID(str(cx.abstract_syntax))
        if not (str(abstract) in services or is_storage_like(abstract)):
            continue
        syntaxes = syntaxes_by_abstract.setdefault(str(abstract), [])
        syntaxes += [str(ts) for ts in cx.transfer_syntax if str(ts) in ACCEPTED_SYNTAXES and str(ts) not in syntaxes]
    supported = []
    for abstract, syntaxes in syntaxes_by_abstract.items():
        if syntaxes:
            context = PresentationContext()
            context.abstract_syntax = UID(abstract)
            context.transfer_syntax = [UID(ts) for ts in syntaxes]
            if abstract not in services:  # storage-like (see the filter above)
                # A C-GET requestor proposes SCP/SCU role selection for the storage classes
                # it wants back; accepting both roles lets us send them on its association.
                # A peer proposing no roles still gets the default (we are the SCP).
                context.scu_role = context.scp_role = True
            supported.append(context)
    return supported


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

SERVICES = frozenset({str(Verification)}) | RETRIEVE_CLASSES | FIND_CLASSES


def _service_class_for(uid: str) -> Type[ServiceClass]:
    """pynetdicom's lookup, except that private and unknown storage-like classes (which we
    accepted at negotiation) are served by the Storage service class, not refused."""
    found = uid_to_service_class(uid)
    if found is ServiceClass and is_storage_like(UID(uid)):
        return StorageServiceClass
    return found


def install_storage_routing() -> None:
    # pynetdicom's only switch for this (UNRESTRICTED_STORAGE_SERVICE) also accepts any
    # transfer syntax, Deflate included; so we replace the lookup it dispatches with.
    association.uid_to_service_class = _service_class_for  # type: ignore[attr-defined]
