"""The ports Lightbox serves: the sockets systemd holds for it, else its own.

Under systemd, ``lightbox-http.socket`` (port 80), ``lightbox-https.socket`` (443) and
``lightbox-dicom.socket`` (104 and 11112) listen on Lightbox's behalf and pass their sockets,
named ``http``, ``https`` and ``dicom``: ports below 1024 then need no privilege at all, and a
connection that arrives while the service restarts waits in the socket's queue instead of being
refused.  Without them (``lightbox serve`` by hand), Lightbox binds ``host``:``dicom_port``,
``host``:``http_port`` and ``host``:``https_port`` itself.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import socket
from collections.abc import Sequence

from appliance.config import ConfigError, Settings

LOG = logging.getLogger("lightbox.service")

HTTP, HTTPS, DICOM, DICOM_TLS = "http", "https", "dicom", "dicom-tls"  # the socket units' FileDescriptorName=
HL7 = "hl7"  # bound by Lightbox itself (hl7_port): no socket unit passes it
BACKLOG = 128


def take(passed: dict[str, list[socket.socket]], kind: str, host: str, port: int) -> list[socket.socket]:
    """The listening sockets of ``kind``: those systemd passed, else one bound to host:port
    (none for port 0: that service is off)."""
    unknown = sorted(set(passed) - {HTTP, HTTPS, DICOM, DICOM_TLS})
    if unknown:
        raise ConfigError(
            f"systemd passed sockets named {', '.join(unknown)}: a socket unit of Lightbox's needs "
            f"FileDescriptorName={HTTP}, {HTTPS}, {DICOM} or {DICOM_TLS}"
        )
    sockets = passed.get(kind)
    origin = "systemd"
    if sockets is None:
        if not port:
            return []
        try:
            sockets, origin = [socket.create_server((host, port), backlog=BACKLOG)], "bound"
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({kind}): {exc.strerror or exc}") from None
    for sock in sockets:
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ConfigError(f"the {kind} socket from systemd is not a listening TCP socket (ListenStream=)")
        LOG.info("%s_listening address=%s port=%d from=%s", kind, *sock.getsockname()[:2], origin)
    return sockets


def reachable(sock: socket.socket) -> tuple[str, int]:
    """Where a client on this machine reaches a listening socket: loopback for a wildcard."""
    host, port = sock.getsockname()[:2]
    if ipaddress.ip_address(host).is_unspecified:
        host = "::1" if sock.family == socket.AF_INET6 and _v6_only(sock) else "127.0.0.1"
    return host, port


def _v6_only(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))


def in_force(
    settings: Settings,
    dicom: list[socket.socket],
    http: list[socket.socket],
    https: Sequence[socket.socket] = (),
    dicom_tls: Sequence[socket.socket] = (),
) -> Settings:
    """``settings`` with the address and ports actually served (the first of each kind; 0 for
    none), for what announces or shows them: DNS-SD, the admin pages."""
    host, dicom_port = dicom[0].getsockname()[:2]
    if ipaddress.ip_address(host).is_unspecified:
        host = "0.0.0.0"  # every address, whichever family the socket is
    served = {
        "host": host,
        "dicom_port": dicom_port,
        "http_port": http[0].getsockname()[1],
        "https_port": https[0].getsockname()[1] if https else 0,
        "dicom_tls_port": dicom_tls[0].getsockname()[1] if dicom_tls else 0,
    }
    return dataclasses.replace(settings, values={**settings.values, **served})
