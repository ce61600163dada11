"""DICOM TLS (PS3.15 Annex B, the BCP 195 profiles): the TLS port's context and those of the
associations Lightbox opens to nodes that require TLS.

Both ways, Lightbox shows the box's certificate (``appliance.certificates``) and trusts per
node: a node's ``tls_trust`` holds the peer's own certificate or the CA that signs it.  On the
TLS port a peer must show a certificate trusted for one of the nodes (``dicom_tls_peers =
trusted``), or may come without one (``any``: encryption, the device policy decides).  Peers
are named by address, not by a host name their certificate would carry, so what is checked is
the certificate itself: pinned, or signed by the node's CA.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from appliance.archive import Archive, DicomNode
from appliance.certificates import Identity, tls_context

LOG = logging.getLogger("lightbox.dicom")


def _context(purpose: ssl._SSLMethod, identity: Identity) -> ssl.SSLContext:
    context = tls_context(purpose, identity)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a pinned peer certificate is an anchor
    return context


def client_context(identity: Identity, trusted: str) -> ssl.SSLContext:
    """For an association Lightbox opens: the peer's certificate must be one of ``trusted``
    (PEM) or signed by one of them; Lightbox shows its own."""
    context = _context(ssl.PROTOCOL_TLS_CLIENT, identity)
    context.check_hostname = False  # peers are addressed by IP; the certificate is pinned instead
    context.load_verify_locations(cadata=trusted)
    return context


def node_context(identity: Identity, node: DicomNode) -> ssl.SSLContext:
    """For an association to ``node``, checked against the certificate trusted for it."""
    if not node.tls_trust:
        raise ssl.SSLError(f"no certificate is trusted for {node.aet}: give its certificate or CA")
    return client_context(identity, node.tls_trust)


@dataclass(frozen=True)
class PeerCertificate:
    subject: str
    sha256: str


def peer_certificate(sock: ssl.SSLSocket) -> PeerCertificate | None:
    """What a TLS peer showed, for the log and the audit trail."""
    der = sock.getpeercert(binary_form=True)
    if not der:
        return None
    names: Any = (sock.getpeercert() or {}).get("subject", ())  # ((("commonName", "CT1"),), ...)
    subject = ", ".join(f"{key}={value}" for rdn in names for key, value in rdn)
    return PeerCertificate(subject or "?", hashlib.sha256(der).hexdigest()[:16])


class ServerContexts:
    """The TLS port's context, made again when a node's trusted certificates change (an
    admin adds a node: the next connection trusts it, without a restart)."""

    def __init__(self, identity: Identity, peers: str) -> None:
        self.identity = identity
        self.peers = peers
        self._lock = threading.Lock()
        self._made_for: str | None = None
        self._context: ssl.SSLContext | None = None

    def current(self, archive: Archive) -> ssl.SSLContext:
        trusted = self._trusted(archive) if self.peers == "trusted" else ""
        with self._lock:
            if self._context is None or trusted != self._made_for:
                self._context = self._make(trusted)
                self._made_for = trusted
            return self._context

    def _trusted(self, archive: Archive) -> str:
        """Every node's trusted certificates, and the box's own (for its own health check)."""
        pems = [node.tls_trust for node in archive.nodes.all() if node.tls_trust]
        return "\n".join([self.identity.certificate.read_text(encoding="ascii"), *pems])

    def _make(self, trusted: str) -> ssl.SSLContext:
        context = _context(ssl.PROTOCOL_TLS_SERVER, self.identity)
        if self.peers == "trusted":
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cadata=trusted)
        return context
