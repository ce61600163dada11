"""Announce Lightbox and browse for DICOM services on the LAN (mDNS + DNS-SD, python-zeroconf).

Started and stopped by ``service.py``.  A watcher thread looks at the local addresses (and at
the AE title in force, which an admin may change on the web page) every few seconds: when they
change (DHCP, a cable plugged in), zeroconf is started afresh on the new ones, which says
goodbye for the old records and announces the new.  Only IPv4.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass

import ifaddr
from zeroconf import ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

from appliance.archive import Archive
from appliance.config import Settings
from appliance.discovery import dnssd

LOG = logging.getLogger("lightbox.discovery")

ADDRESS_CHECK = 5.0  # seconds between looks at the local addresses
REFRESH = 60.0  # seconds between moves of ``last_seen`` for services still announced
RESOLVE_TIMEOUT_MS = 3000


@dataclass(frozen=True)
class DiscoveryOptions:
    announcement: dnssd.Announcement
    interfaces: str = ""  # comma-separated interface names or addresses; "" for all
    listen_host: str = "0.0.0.0"  # where the DICOM/HTTP servers listen


def discovery_options(settings: Settings) -> DiscoveryOptions:
    announcement = dnssd.Announcement(
        settings.aet, settings.mdns_hostname, settings.dicom_port, settings.http_port, settings.dicom_tls_port or None
    )
    return DiscoveryOptions(announcement, settings.mdns_interfaces, settings.host)


def local_addresses(interfaces: str, listen_host: str) -> list[str]:
    """The IPv4 addresses to announce and to answer mDNS on.

    Servers bound to one address are announced on that one only.  Otherwise every address of
    the chosen interfaces (all when none are chosen), loopback only when there is nothing else.
    """
    if listen_host not in ("", "0.0.0.0"):
        return [listen_host]
    wanted = {w.strip() for w in interfaces.split(",") if w.strip()}
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not ip.is_IPv4:
                continue
            if wanted and not wanted & {adapter.name, adapter.nice_name, ip.ip}:
                continue
            found.append(str(ip.ip))
    outside = [a for a in found if not a.startswith("127.")]
    return sorted(outside or found)


class Discovery:
    def __init__(self, archive: Archive, options: DiscoveryOptions) -> None:
        self.archive = archive
        self.options = options
        self._setting_aet = options.announcement.aet
        self._zc: Zeroconf | None = None
        self._browser: ServiceBrowser | None = None
        self._addresses: list[str] | None = None  # those last tried (None: not yet); retried when they change
        self._own: set[str] = set()
        self._present: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="discovery", daemon=True)

    def start(self) -> None:
        """Announce and browse from a thread of its own: probing for a unique name takes
        about a second, which start-up need not wait for."""
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher.is_alive():
            self._watcher.join(ADDRESS_CHECK + 5)
        with self._lock:
            self._close()

    def _restart(self, addresses: list[str]) -> None:
        with self._lock:
            self._close()
            if not addresses:
                self._addresses = addresses
                LOG.warning("mdns_off reason=no_address interfaces=%r", self.options.interfaces)
                return
            self._addresses = addresses  # on failure too: try again when the addresses change
            try:
                zc = Zeroconf(interfaces=addresses)
            except OSError as exc:  # e.g. no multicast on these interfaces
                LOG.warning("mdns_off addresses=%s reason=%r", ",".join(addresses), str(exc))
                return
            self._zc = zc
            infos = dnssd.service_infos(self.options.announcement, addresses)
            for info in infos:
                zc.register_service(info, allow_name_change=True)
            self._own = {info.name for info in infos}
            self._browser = ServiceBrowser(zc, list(dnssd.BROWSED), handlers=[self._on_change])
            LOG.info(
                "mdns_announced host=%s addresses=%s services=%s",
                self.options.announcement.server,
                ",".join(addresses),
                ",".join(sorted(self._own)),
            )

    def _close(self) -> None:
        if self._browser is not None:
            self._browser.cancel()
            self._browser = None
        if self._zc is not None:
            self._zc.unregister_all_services()  # goodbye packets: peers forget us at once
            self._zc.close()
            self._zc = None
            LOG.info("mdns_unregistered addresses=%s", ",".join(self._addresses or ()))

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if name in self._own:
            return
        try:
            if state_change is ServiceStateChange.Removed:
                self._present.discard(name)
                self.archive.discovered.gone(name)
                LOG.info("dicom_service_gone name=%r", name)
                return
            info = zeroconf.get_service_info(service_type, name, timeout=RESOLVE_TIMEOUT_MS)
            if info is None:
                LOG.info("dicom_service_unresolved name=%r", name)
                return
            found = dnssd.found_service(info)
            self.archive.discovered.seen(found)
            self._present.add(name)
            LOG.info("dicom_service_found name=%r aet=%r host=%s port=%d", name, found.aet, found.host, found.port)
        except Exception:  # a peer's odd records must not stop browsing
            LOG.exception("dicom_service_not_recorded name=%r", name)

    def _watch(self) -> None:
        last_refresh = time.monotonic()
        first = True
        while first or not self._stopping.wait(ADDRESS_CHECK):
            first = False
            try:
                addresses = local_addresses(self.options.interfaces, self.options.listen_host)
                aet = self.archive.site.ae_title(self._setting_aet)
                if addresses != self._addresses or aet != self.options.announcement.aet:
                    if self._addresses is not None:
                        LOG.info(
                            "mdns_changed addresses=%s aet=%r (were %s, %r)", ",".join(addresses), aet,
                            ",".join(self._addresses), self.options.announcement.aet,
                        )  # fmt: skip
                    self.options = dataclasses.replace(
                        self.options, announcement=dataclasses.replace(self.options.announcement, aet=aet)
                    )
                    self._restart(addresses)
                if time.monotonic() - last_refresh >= REFRESH:
                    last_refresh = time.monotonic()
                    self.archive.discovered.still_there(self._still_announced())
            except Exception:  # keep watching; the next look may succeed
                LOG.exception("mdns_watch_failed")

    def _still_announced(self) -> list[str]:
        """Present services whose records are still live in zeroconf's cache."""
        zc = self._zc
        if zc is None:
            return []
        return [name for name in list(self._present) if ServiceInfo(_service_type(name), name).load_from_cache(zc)]


def _service_type(name: str) -> str:
    """``"US1._dicom._tcp.local."`` -> ``"_dicom._tcp.local."``"""
    return next(t for t in dnssd.BROWSED if name.endswith("." + t))
