"""What Lightbox announces over DNS-SD, and how an announced DICOM service is read.

DICOM PS3.15 Annex H.2: a DICOM AE is the service ``_dicom._tcp`` (``_dicom-tls._tcp`` over
TLS) with the TXT keys ``AET`` and ``PrimaryDeviceType``.  Horos and OsiriX read ``AETitle``
instead, so it is announced too.  The web UI is ``_http._tcp`` (TXT ``path``); DICOMweb is
``_dicomweb._tcp`` on the same port (TXT ``path=/dicom-web``, the base URL's path).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from zeroconf import ServiceInfo

from appliance.archive import FoundService

DICOM = "_dicom._tcp.local."
DICOM_TLS = "_dicom-tls._tcp.local."
HTTP = "_http._tcp.local."
DICOMWEB = "_dicomweb._tcp.local."
DICOMWEB_PATH = "/dicom-web"  # appliance.web.dicomweb.PREFIX (discovery does not import the web)
BROWSED = (DICOM, DICOM_TLS)
DEVICE_TYPE = "ARCHIVE"  # PS3.16 CID 30 / the LDAP dicomPrimaryDeviceType of a PACS


@dataclass(frozen=True)
class Announcement:
    aet: str
    hostname: str  # without ".local"
    dicom_port: int
    http_port: int
    tls_port: int | None = None  # the DICOM TLS port (None: none served)

    @property
    def server(self) -> str:
        return f"{self.hostname}.local."


def instance_name(announcement: Announcement) -> str:
    return f"Lightbox {announcement.aet}"


def service_infos(announcement: Announcement, addresses: list[str]) -> list[ServiceInfo]:
    """The services to register, on ``addresses`` (the A records of the host name)."""
    name = instance_name(announcement)
    dicom_txt = {"AET": announcement.aet, "AETitle": announcement.aet, "PrimaryDeviceType": DEVICE_TYPE}

    def info(service_type: str, port: int, txt: dict[str, str]) -> ServiceInfo:
        return ServiceInfo(
            service_type,
            f"{name}.{service_type}",
            port=port,
            properties=txt,
            server=announcement.server,
            parsed_addresses=addresses,
        )

    infos = [
        info(DICOM, announcement.dicom_port, dicom_txt),
        info(HTTP, announcement.http_port, {"path": "/"}),
        info(DICOMWEB, announcement.http_port, {"path": DICOMWEB_PATH}),
    ]
    if announcement.tls_port is not None:
        infos.append(info(DICOM_TLS, announcement.tls_port, dicom_txt))
    return infos


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace").strip() if value else ""


def found_service(info: ServiceInfo) -> FoundService:
    """A resolved ``_dicom._tcp`` / ``_dicom-tls._tcp`` service as the archive keeps it."""
    txt = {_text(k): _text(v) for k, v in (info.properties or {}).items() if k}
    addresses = info.parsed_addresses()
    # Prefer an IPv4 address: DICOM peers are configured with those far more often.
    addresses.sort(key=lambda a: ipaddress.ip_address(a).version)
    host = addresses[0] if addresses else (info.server or "").rstrip(".")
    return FoundService(
        name=info.name,
        service_type=info.type,
        aet=txt.get("AET") or txt.get("AETitle", ""),
        host=host,
        port=info.port or 0,
        device_type=txt.get("PrimaryDeviceType", ""),
        txt=txt,
    )
