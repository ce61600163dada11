"""Settings of the DICOM front door: the acceptor's (``DicomOptions``) and the part of them an
association and its services see (``AssociationOptions``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DicomOptions:
    aet: str = "LIGHTBOX"
    max_associations: int = 16
    network_timeout: float = 60.0
    max_pdu: int = 1 << 20
    max_instance_bytes: int = 4096 << 20
    query_retrieve_from: str = "known-nodes"  # see policy.py
    called_aet_check: str = "any"  # or "own": only Lightbox's own AE title may be called
    health_aet: str = ""  # the calling AE title of the service's own health check (acceptor.py)


@dataclass(frozen=True)
class AssociationOptions:
    aet: str
    max_pdu: int
    max_instance_bytes: int
    query_retrieve_from: str
    network_timeout: float
