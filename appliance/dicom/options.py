"""Settings of the DICOM front door: the acceptor's (``DicomOptions``) and the part of them an
association and its services see (``AssociationOptions``)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from appliance.certificates import Identity

# (SOP Instance UID, sha256) pairs -> the UIDs of those in a verified backup (``commitment.py``)
BackupVerified = Callable[[Collection[tuple[str, str]]], set[str]]


@dataclass(frozen=True)
class DicomOptions:
    aet: str = "LIGHTBOX"
    max_associations: int = 16
    network_timeout: float = 60.0  # a whole PDU, once begun, must arrive within it
    idle_timeout: float = 30.0  # silence allowed between PDUs (Orthanc's DicomScpTimeout)
    associate_timeout: float = 10.0  # to the whole A-ASSOCIATE-RQ; and for the peer to close after a refusal (ARTIM)
    max_associations_per_address: int = 0  # 0: half of max_associations (see address_share)
    max_pending: int = 64  # connections per process waiting for their A-ASSOCIATE-RQ or, refused, for their close
    max_pdu: int = 1 << 20
    max_instance_bytes: int = 4096 << 20
    query_retrieve_from: str = "known-nodes"  # see policy.py
    called_aet_check: str = "any"  # or "own": only Lightbox's own AE title may be called
    health_aet: str = ""  # the calling AE title of the service's own health check (acceptor.py)
    tls_identity: Identity | None = None  # the box's certificate: the TLS port's, and shown to TLS nodes
    tls_peers: str = "trusted"  # who may use the TLS port: "trusted" certificates only, or "any" (tls.py)
    commitment_requires_backup: bool = False  # commit only instances also in a verified backup
    backup_verified: BackupVerified | None = None  # how that is known (None: nothing is)

    @property
    def address_share(self) -> int:
        """Associations one peer address may hold at once: never every slot, so that a
        modality at another address can always get in."""
        return self.max_associations_per_address or max(1, self.max_associations // 2)


@dataclass(frozen=True)
class AssociationOptions:
    aet: str
    max_pdu: int
    max_instance_bytes: int
    query_retrieve_from: str
    network_timeout: float
    idle_timeout: float
    tls_identity: Identity | None = None  # shown to a C-MOVE destination that requires TLS
    commitment_requires_backup: bool = False
    backup_verified: BackupVerified | None = None
