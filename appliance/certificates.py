"""The box's TLS identity: one certificate and private key, for DICOM TLS and HTTPS alike.

The clinic's own (``tls_certificate`` and ``tls_private_key``, PEM files), else one made on the
box at its first start and kept in the data folder (``tls/``).  The one made here is
self-signed, RSA 2048 (what every modality's TLS stack takes; BCP 195 asks for 2048 bits at
least) and valid for ten years: no one renews it, peers trust it by pinning it, and a person
checks it on the first visit by comparing its SHA-256 fingerprint with the one the box shows
on its console and setup page.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from appliance.config import ConfigError, Settings
from appliance.files import write_private

LOG = logging.getLogger("lightbox.tls")

FOLDER = "tls"
CERTIFICATE, PRIVATE_KEY = "lightbox.crt", "lightbox.key"
VALID_DAYS = 3650


@dataclass(frozen=True)
class Identity:
    certificate: Path
    private_key: Path
    fingerprint: str  # SHA-256 of the certificate, as browsers show it ("AB:CD:...")
    made_here: bool


# RFC 9325 (BCP 195) 4.2: TLS 1.2 only with forward secrecy and AEAD; TLS 1.3's suites are all fine.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"


def tls_context(purpose: ssl._SSLMethod, identity: Identity) -> ssl.SSLContext:
    """The BCP 195 settings, showing the box's certificate: what DICOM TLS and HTTPS start from
    (TLS 1.2 or 1.3, no compression, no renegotiation)."""
    context = ssl.SSLContext(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(identity.certificate, identity.private_key)
    return context


def fingerprint(pem: str) -> str:
    """The SHA-256 fingerprint of a PEM certificate (the first one: a clinic's file may hold its
    chain after it, or text before it), colon-separated hex."""
    start = pem.index(ssl.PEM_HEADER)
    first = pem[start : pem.index(ssl.PEM_FOOTER, start) + len(ssl.PEM_FOOTER)]
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def identity(settings: Settings) -> Identity:
    """The identity in force: the clinic's when set, else the box's own (made if missing)."""
    if settings.tls_certificate or settings.tls_private_key:
        if not (settings.tls_certificate and settings.tls_private_key):
            raise ConfigError("tls_certificate and tls_private_key go together: set both, or neither")
        own = Identity(Path(settings.tls_certificate), Path(settings.tls_private_key), "", made_here=False)
    else:
        folder = settings.data_dir / FOLDER
        own = Identity(folder / CERTIFICATE, folder / PRIVATE_KEY, "", made_here=True)
        if not (own.certificate.exists() and own.private_key.exists()):
            _make_apart(own, settings.mdns_hostname)
    try:
        pem = own.certificate.read_text(encoding="ascii")
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(own.certificate, own.private_key)
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise ConfigError(f"the TLS certificate {own.certificate} or its key cannot be used: {exc}") from None
    return Identity(own.certificate, own.private_key, fingerprint(pem), own.made_here)


def _make_apart(own: Identity, hostname: str) -> None:
    """``make`` in a process of its own: the cryptography package costs the service ~13 MB that
    it would keep for months, for a moment at its first start."""
    command = [sys.executable, "-m", "appliance.certificates", str(own.certificate), str(own.private_key), hostname]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise ConfigError(f"cannot make a TLS certificate in {own.certificate.parent}: {done.stderr.strip()[-500:]}")
    LOG.info("tls_certificate_made path=%s", own.certificate)


def make(certificate: Path, private_key: Path, hostname: str) -> None:
    """A self-signed certificate for this box, its key readable by Lightbox alone."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names = sorted({hostname, f"{hostname}.local", socket.gethostname(), "localhost"})
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{hostname}.local"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lightbox"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))  # a peer whose clock is a little behind
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(private_key, key_pem)  # the key first: a certificate alone is remade
    write_private(certificate, cert.public_bytes(serialization.Encoding.PEM))


if __name__ == "__main__":
    make(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
