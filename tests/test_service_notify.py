"""`lightbox serve` speaks systemd's protocols (a test plays systemd's side; the real one is in
test_systemd_service.py): it serves the listening sockets it is passed (socket activation,
DICOM on two of them, HTTPS on one), says READY=1 only once every port answers, feeds the watchdog only
while its health rounds pass, tells its state in STATUS=, and stops without closing the
sockets for the next start."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from support.activation import NotifySocket, activated
from support.tools import dcmtk

WATCHDOG_USEC = 6_000_000  # a round every 2 s


def echo(port: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [dcmtk("echoscu"), "-aec", "LIGHTBOX", "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60
    )


def healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
        return answer.status


def children(pid: int) -> list[int]:
    """The processes ``pid`` forked, from any of its threads (the DICOM workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def serve(tmp_path: Path, sockets: list[tuple[str, socket.socket]], notify: NotifySocket) -> subprocess.Popen:
    command = [sys.executable, "-m", "appliance", "serve", "--data", str(tmp_path / "data"),
               "--discovery", "false", "--min-free-mb", "0"]  # fmt: skip
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    return activated(command, sockets, env, tmp_path / "server.log")


@pytest.mark.slow
def test_passed_sockets_ready_status_watchdog_and_stop(tmp_path: Path) -> None:
    http, https, dicom_a, dicom_b, tls = (socket.create_server(("127.0.0.1", 0)) for _ in range(5))
    named = (("http", http), ("a", dicom_a), ("b", dicom_b), ("tls", tls))
    ports = {name: sock.getsockname()[1] for name, sock in named}
    notify = NotifySocket(tmp_path / "notify")
    sockets = [("dicom", dicom_a), ("http", http), ("https", https), ("dicom", dicom_b), ("dicom-tls", tls)]
    server = serve(tmp_path, sockets, notify)
    try:
        ready = notify.next("READY=1")
        # Once READY=1 is said, every door answers: both DICOM sockets and the web (and the
        # TLS port, which the rounds ask over TLS: see STATUS= below when it does not).
        assert echo(ports["a"]).returncode == 0 and echo(ports["b"]).returncode == 0
        assert healthz(ports["http"]) == 200
        assert ssl.get_server_certificate(https.getsockname()[:2], timeout=10).startswith("-----BEGIN CERTIFICATE")
        assert "STATUS=serving, 0 studies, backup not set up" in ready.splitlines()
        assert notify.next("WATCHDOG=1").splitlines()[0].startswith("STATUS=serving")

        # Frozen workers: the rounds fail, the pings stop, STATUS says which port.
        workers = children(server.pid)
        assert len(workers) == 2
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            unhealthy = notify.next("STATUS=unhealthy")
            assert f"DICOM port {ports['a']} does not answer" in unhealthy and "WATCHDOG=1" not in unhealthy
            assert f"DICOM TLS port {ports['tls']} does not answer" in unhealthy
            again = notify.next("STATUS=")
            assert again.startswith("STATUS=unhealthy") and "WATCHDOG=1" not in again
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        assert notify.next("WATCHDOG=1").startswith("STATUS=serving")

        server.send_signal(signal.SIGTERM)
        assert notify.next("STOPPING=1")
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    # The sockets outlived the service, listening still: the next start serves them again.
    second = serve(tmp_path, sockets, notify)
    try:
        notify.next("READY=1")
        assert echo(ports["b"]).returncode == 0 and healthz(ports["http"]) == 200
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
        notify.close()
    log = (tmp_path / "server.log").read_text()
    assert "dicom_listening" in log and "https_listening" in log and "from=systemd" in log and "from=bound" not in log


@pytest.mark.slow
def test_probe_associations_are_not_recorded_as_devices(tmp_path: Path) -> None:
    """The health rounds' C-ECHOes call with a secret AE title: no device, no log line, even
    when the device policy refuses strangers."""
    http, https, dicom = (socket.create_server(("127.0.0.1", 0)) for _ in range(3))
    notify = NotifySocket(tmp_path / "notify")
    command = [sys.executable, "-m", "appliance", "serve", "--data", str(tmp_path / "data"),
               "--discovery", "false", "--min-free-mb", "0", "--device-policy", "locked",
               "--dicom-tls-port", "0", "--https-port", "0"]  # fmt: skip
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    server = activated(command, [("http", http), ("https", https), ("dicom", dicom)], env, tmp_path / "server.log")
    try:
        notify.next("READY=1")
        notify.next("WATCHDOG=1")  # a second round passed, under the locked policy
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
        notify.close()
    listed = subprocess.run(
        [sys.executable, "-m", "appliance", "device", "list", "--data", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0 and "refused" not in listed.stdout, listed.stdout
    assert "association_requested" not in (tmp_path / "server.log").read_text()
