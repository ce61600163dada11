"""Certificates a test makes (a clinic's CA and its server certificate, a stranger's self-signed
one), the pin Chromium takes, and a small HTTPS server showing any of them."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Made:
    certificate: Path  # PEM: the certificate, then its chain
    private_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _certificate(subject: str, issuer: str, public_key, signer, ca: bool, hosts: tuple[str, ...]) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def self_signed(folder: Path, name: str, hosts: tuple[str, ...] = ("localhost",)) -> Made:
    """A self-signed server certificate (P-256), as anyone on the LAN could make one."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(name, name, key.public_key(), key, False, hosts)
    made = Made(folder / f"{name}.crt", folder / f"{name}.key")
    made.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, made.private_key)
    return made


def clinic_ca_and_server(folder: Path, hosts: tuple[str, ...] = ("localhost",)) -> tuple[Path, Made]:
    """A clinic's CA (its certificate's path) and a server certificate it signed, with the chain."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Clinic CA", "Clinic CA", ca_key.public_key(), ca_key, True, ())
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate("lightbox.clinic.example", "Clinic CA", key.public_key(), ca_key, False, hosts)
    ca_path = folder / "clinic-ca.crt"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    made = Made(folder / "lightbox.clinic.crt", folder / "lightbox.clinic.key")
    made.certificate.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    _write_key(key, made.private_key)
    return ca_path, made


def spki_pin(certificate_pem: bytes) -> str:
    """What Chromium's --ignore-certificate-errors-spki-list takes: the base64 SHA-256 of the
    certificate's SubjectPublicKeyInfo."""
    public_key = x509.load_pem_x509_certificate(certificate_pem).public_key()
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def served_fingerprint(port: int, host: str = "127.0.0.1") -> str:
    """The SHA-256 fingerprint of the certificate a TLS server on ``port`` shows (colon hex)."""
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((host, port), timeout=10))
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


@contextlib.contextmanager
def https_server(made: Made) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 showing ``made`` (a page saying so); its port."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"not Lightbox")

        def log_message(self, *args: object) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(made.certificate, made.private_key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
