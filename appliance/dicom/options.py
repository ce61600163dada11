"""Settings of the DICOM front door, as the acceptor and its associations see them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DicomOptions:
    aet: str = "LIGHTBOX"
    host: str = "0.0.0.0"
    port: int = 11112
    max_associations: int = 16
    network_timeout: float = 60.0
    max_pdu: int = 1 << 20
    max_instance_bytes: int = 4096 << 20
    query_retrieve_from: str = "known-nodes"  # see policy.py
