"""LAN discovery in a private network namespace (loopback with multicast): Lightbox announces
``_dicom._tcp``, ``_dicom-tls._tcp``, ``_http._tcp`` and ``_dicomweb._tcp``; a separate zeroconf process and BIND's dig read the
records; the address found answers C-ECHO; Lightbox lists a DICOM node another process
announces; a new address is announced; goodbye at shutdown."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.netns import private_network
from support.peers import StoreSCP
from support.scu import rows
from support.tools import dcmtk, require

pytestmark = pytest.mark.slow  # private networks and mDNS timing

PEER = str(Path(__file__).parent / "support" / "mdns_peer.py")
DICOM, DICOM_TLS, HTTP = "_dicom._tcp.local.", "_dicom-tls._tcp.local.", "_http._tcp.local."
DICOMWEB = "_dicomweb._tcp.local."
WAIT = 20.0  # seconds: probing and announcing take ~2 s, the address check runs every 5 s


@pytest.fixture
def mdns_network() -> Iterator[None]:
    with private_network():
        for command in (
            ["ip", "link", "set", "lo", "multicast", "on"],
            ["ip", "route", "add", "224.0.0.0/4", "dev", "lo"],
        ):
            subprocess.run(command, check=True)
        yield


class Browser:
    """A zeroconf browser in its own process; its events, as they come."""

    def __init__(self, service_type: str) -> None:
        self.proc = subprocess.Popen([sys.executable, PEER, "browse", service_type], stdout=subprocess.PIPE, text=True)
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.events.put(json.loads(line))

    def next(self, event: str | tuple[str, ...], name_contains: str = "", **where: object) -> dict:
        events = (event,) if isinstance(event, str) else event
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                found = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if (
                found["event"] in events
                and name_contains in found["name"]
                and all(found.get(k) == v for k, v in where.items())
            ):
                return found
        raise AssertionError(f"no {event} event for {name_contains!r} {where} within {WAIT:.0f} s")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def dig(*query: str) -> str:
    """Ask the responder directly (a legacy unicast query to port 5353): BIND's parser, not zeroconf's."""
    result = subprocess.run(
        [str(require("/usr/bin/dig")), "-p", "5353", "@127.0.0.1", "+time=3", "+tries=2", *query],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return result.stdout


def test_lightbox_announces_and_the_address_found_answers_c_echo(mdns_network, lightbox_factory) -> None:
    dicom_browser, http_browser, tls_browser = Browser(DICOM), Browser(HTTP), Browser(DICOM_TLS)
    dicomweb_browser = Browser(DICOMWEB)
    try:
        server = lightbox_factory(aet="LB_MDNS", mdns_hostname="lightbox-test", dicom_workers=0, discovery=True)
        found = dicom_browser.next("added", "LB_MDNS")
        assert found["txt"] == {"AET": "LB_MDNS", "AETitle": "LB_MDNS", "PrimaryDeviceType": "ARCHIVE"}
        assert found["server"] == "lightbox-test.local." and found["port"] == server.dicom_port
        assert found["addresses"] == ["127.0.0.1"]
        echo = subprocess.run(
            [dcmtk("echoscu"), "-aec", found["txt"]["AET"], found["addresses"][0], str(found["port"])],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert echo.returncode == 0, echo.stdout + echo.stderr

        tls = tls_browser.next("added", "LB_MDNS")  # PS3.15 H.2: the TLS port is its own service
        assert tls["port"] == server.dicom_tls_port and tls["txt"]["AET"] == "LB_MDNS"

        web = http_browser.next("added", "LB_MDNS")
        assert web["port"] == server.http_port and web["txt"] == {"path": "/"}
        with urllib.request.urlopen(f"http://{web['addresses'][0]}:{web['port']}/healthz", timeout=10) as rsp:
            assert json.load(rsp)["status"] in ("ok", "disk_low")

        dicomweb = dicomweb_browser.next("added", "LB_MDNS")  # the base URL a DICOMweb client needs
        assert dicomweb["port"] == server.http_port and dicomweb["txt"] == {"path": "/dicom-web"}
        base = f"http://{dicomweb['addresses'][0]}:{dicomweb['port']}{dicomweb['txt']['path']}"
        with pytest.raises(urllib.error.HTTPError) as refused:  # it is there, and asks for a user
            urllib.request.urlopen(base + "/studies", timeout=10)
        assert refused.value.code == 401 and "error" in json.load(refused.value)

    finally:
        dicomweb_browser.stop()
        dicom_browser.stop()
        http_browser.stop()
        tls_browser.stop()

    # Only now: a unicast query to port 5353 reaches just one of the sockets sharing it.
    ptr = dig("_dicom._tcp.local", "PTR")
    assert "Lightbox\\032LB_MDNS._dicom._tcp.local." in ptr
    assert '"AET=LB_MDNS" "AETitle=LB_MDNS" "PrimaryDeviceType=ARCHIVE"' in ptr
    assert re.search(rf"\sSRV\s+0 0 {server.dicom_port} lightbox-test\.local\.", ptr), ptr
    assert "127.0.0.1" in dig("lightbox-test.local", "A").split("ANSWER SECTION:")[1]

    browser = Browser(DICOM)
    try:
        browser.next("added", "LB_MDNS")
        server.stop()  # goodbye packets: browsers forget Lightbox at once, not after the TTL
        browser.next("removed", "LB_MDNS")
    finally:
        browser.stop()


def test_new_address_is_announced(mdns_network, lightbox_factory) -> None:
    browser = Browser(DICOM)
    try:
        server = lightbox_factory(aet="LB_MOVES", host="0.0.0.0", dicom_workers=0, discovery=True)
        assert browser.next("added", "LB_MOVES")["addresses"] == ["127.0.0.1"]  # loopback: nothing else yet
        subprocess.run(["ip", "addr", "add", "10.77.0.1/24", "dev", "lo"], check=True)
        # Zeroconf starts afresh on the new address: goodbye, then an announcement.
        moved = browser.next(("added", "updated"), "LB_MOVES", addresses=["10.77.0.1"])
        echo = subprocess.run(
            [dcmtk("echoscu"), "-aec", "LB_MOVES", moved["addresses"][0], str(server.dicom_port)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert echo.returncode == 0, echo.stdout + echo.stderr
    finally:
        browser.stop()


def test_lightbox_lists_a_dicom_node_another_process_announces(mdns_network, lightbox_factory, tmp_path) -> None:
    server = lightbox_factory(dicom_workers=0, discovery=True)
    scp = StoreSCP(tmp_path / "us-room", aet="US_ROOM_1")  # the announced node's own DICOM port
    port = scp.port
    peer = subprocess.Popen(
        [sys.executable, PEER, "announce", "Ultrasound Room 1", DICOM, str(port), "AET=US_ROOM_1", "PrimaryDeviceType=US"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert peer.stdout.readline().strip() == "announced"  # type: ignore[union-attr]
        name = "Ultrasound Room 1._dicom._tcp.local."
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not rows(
            server.data, "SELECT 1 FROM discoveredservice WHERE name = ?", name
        ):
            time.sleep(0.2)
        listed = server.cli("device", "discovered")
        assert listed.returncode == 0
        assert f"'{name}' aet=US_ROOM_1 host=127.0.0.1 port={port} type=US present=yes" in listed.stdout, listed.stdout

        # The same unit associates with Lightbox: approving it takes its port from the announcement.
        assert server.echoscu(aet="US_ROOM_1").returncode == 0
        approved = server.cli("device", "approve", "US_ROOM_1")
        assert f"node US_ROOM_1 host=127.0.0.1 port={port}" in approved.stdout, approved.stdout + approved.stderr
        echoed = server.cli("device", "echo", "US_ROOM_1")
        assert echoed.returncode == 0 and echoed.stdout.startswith("ok US_ROOM_1"), echoed.stdout + echoed.stderr
    finally:
        peer.stdin.close()  # type: ignore[union-attr]
        peer.wait(30)
        scp.stop()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and rows(
        server.data, "SELECT present FROM discoveredservice WHERE name = ?", name
    ) != [(0,)]:
        time.sleep(0.2)
    assert "present=no" in server.cli("device", "discovered").stdout
