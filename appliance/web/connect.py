"""Connect a modality: the values to type into an ultrasound or X-ray unit (Lightbox's AE
title, this box's addresses and host name, its DICOM ports), and the first contact as it
happens: a device heard from (a C-ECHO is enough: every association is recorded against its
device) and the first study it sent.  The wizard's fourth step and ``/admin/connect`` (JSON
twin ``/api/connect?since=SECONDS&after=SEQ``) show them; their script polls the JSON."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import bottle
from bottle import request

from appliance.archive import Archive
from appliance.config import Settings
from appliance.discovery.lan import local_addresses
from appliance.web.auth import Guard, fail
from appliance.web.studies import with_study_labels
from appliance.web.templates import render


def listening_ports() -> set[int]:
    """The TCP ports this process listens on.  The DICOM door's listening socket stays open in
    the main process (its workers share it), as does any a service manager handed over."""
    ports = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.fromfd(int(name), socket.AF_INET, socket.SOCK_STREAM)  # a duplicate, closed below
        except OSError:
            continue
        with sock:
            try:
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) and (
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
                ):
                    ports.add(sock.getsockname()[1])
            except OSError:  # not a socket
                continue
    return ports


def dicom_ports(settings: Settings, other_ports: set[int]) -> list[int]:
    """The ports a modality may send plain DICOM to: those this process listens on but the
    web's and the DICOM TLS port (e.g. 104 and 11112 on the appliance), else the `dicom_port`
    setting."""
    return sorted(listening_ports() - other_ports) or [settings.dicom_port]


def connection_values(archive: Archive, settings: Settings) -> dict[str, Any]:
    server_port = int(request.environ.get("SERVER_PORT") or settings.http_port)
    return {
        "aet": archive.site.ae_title(settings.aet),
        "addresses": local_addresses(settings.mdns_interfaces, settings.host),
        "host_name": f"{settings.mdns_hostname}.local" if settings.discovery else "",
        "ports": dicom_ports(settings, {settings.http_port, settings.https_port, server_port, settings.dicom_tls_port}),
        "tls_port": settings.dicom_tls_port or None,
    }


def first_contact(archive: Archive, since: float, after: int) -> dict[str, Any] | None:
    """The device heard from most recently since ``since`` (seconds), with the first study it
    sent after change ``after``; None while no device has called."""
    heard = [d for d in archive.devices.all() if d.last_seen >= since]
    if not heard:
        return None
    device = max(heard, key=lambda d: d.last_seen)
    study_uid = archive.first_study_from(device.aet, after)
    study = with_study_labels(archive, [{"study_uid": study_uid}])[0] if study_uid else None
    return {
        "device": {
            "aet": device.aet, "name": device.name, "status": device.status, "address": device.host,
            "implementation": device.implementation_version or device.implementation_class_uid,
            "last_seen": device.last_seen, "associations": device.associations, "refused": device.refused,
            "images_received": device.images_received,
        },
        "study": study,
    }  # fmt: skip


def _number(name: str) -> float:
    try:
        return float(request.query.get(name) or 0)
    except ValueError:
        raise fail(400, f"{name}: a number") from None


def install(app: bottle.Bottle, archive: Archive, guard: Guard, settings: Settings) -> None:
    @app.get("/admin/connect")
    @guard("admin")
    def connect_page():
        return render(
            "connect.tpl", user=guard.user(), csrf=guard.csrf_token(), section="admin",
            values=connection_values(archive, settings), since=time.time(), after=archive.last_change(),
        )  # fmt: skip

    @app.get("/api/connect")
    @guard("admin")
    def connect_api() -> dict:
        since, after = _number("since"), int(_number("after"))
        return {"values": connection_values(archive, settings), "contact": first_contact(archive, since, after)}
