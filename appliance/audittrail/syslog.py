"""Syslog to the clinic's audit collector: RFC 5424 messages over UDP (RFC 5426), TCP (RFC 6587
octet counting) or TLS (RFC 5425), as IHE ATNA's Audit Record Repository takes them.

The target is a URL: ``udp://host[:514]``, ``tcp://host[:601]``, ``tls://host[:6514]``.  TLS
checks the collector's certificate against ``ca_file`` (else the system's CAs) and its host
name, and offers a client certificate when one is set (ATNA's mutual authentication).
"""

from __future__ import annotations

import datetime
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"udp": 514, "tcp": 601, "tls": 6514}
FACILITY_AUTHPRIV, SEVERITY_NOTICE = 10, 5  # security/authorization messages, normal but significant
MSGID = "DICOM+RFC3881"  # IHE ITI TF-2 3.20.7.1: a DICOM audit message
MAX_UDP = 65000  # one datagram; longer messages need TCP or TLS
BOM = b"\xef\xbb\xbf"  # RFC 5424 6.4: a UTF-8 MSG starts with one


class SyslogError(Exception):
    """The collector cannot be reached, or refused the connection (the message says why)."""


@dataclass(frozen=True)
class SyslogTarget:
    transport: str  # udp, tcp or tls
    host: str
    port: int
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def parse(cls, url: str, ca_file: str = "", cert_file: str = "", key_file: str = "") -> SyslogTarget:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"audit syslog {url!r}: expected udp://, tcp:// or tls:// and a host")
        return cls(
            parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme], ca_file, cert_file, key_file
        )


def frame(hostname: str, app_name: str, procid: int, xml: bytes, at: float) -> bytes:
    """One RFC 5424 message holding ``xml``."""
    stamp = datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    priority = FACILITY_AUTHPRIV * 8 + SEVERITY_NOTICE
    header = f"<{priority}>1 {stamp} {hostname[:255] or '-'} {app_name} {procid} {MSGID} - "
    return header.encode("ascii", "replace") + BOM + xml


class SyslogSender:
    """One connection to the collector, opened when needed and again after a failure."""

    def __init__(self, target: SyslogTarget, timeout: float = 10.0) -> None:
        self.target = target
        self.timeout = timeout
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        t = self.target
        try:
            if t.transport == "udp":
                sock = socket.socket(socket.AF_INET6 if ":" in t.host else socket.AF_INET, socket.SOCK_DGRAM)
                sock.connect((t.host, t.port))
                return sock
            sock = socket.create_connection((t.host, t.port), timeout=self.timeout)
            if t.transport == "tls":
                context = ssl.create_default_context(cafile=t.ca_file or None)
                context.minimum_version = ssl.TLSVersion.TLSv1_2  # BCP 195
                if t.cert_file:
                    context.load_cert_chain(t.cert_file, t.key_file or None)
                sock = context.wrap_socket(sock, server_hostname=t.host)
            return sock
        except (OSError, ssl.SSLError) as exc:
            raise SyslogError(f"{t.transport}://{t.host}:{t.port}: {exc}") from exc

    def send(self, message: bytes) -> None:
        """Send one message; on TCP and TLS framed by its length (octet counting)."""
        if self.target.transport == "udp" and len(message) > MAX_UDP:
            raise SyslogError(f"a message of {len(message)} bytes does not fit a datagram: use tcp:// or tls://")
        data = message if self.target.transport == "udp" else str(len(message)).encode() + b" " + message
        if self._sock is None:
            self._sock = self._connect()
        try:
            self._sock.sendall(data)
        except (OSError, ssl.SSLError) as exc:
            self.close()
            raise SyslogError(f"sending to the collector failed: {exc}") from exc

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
