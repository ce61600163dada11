"""Independent DICOM peers for tests, and the private network they run in.

DCMTK's storescp and Orthanc cannot bind to 127.0.0.1 only.  ``private_network`` moves the
test process into a new network namespace with nothing but loopback, so every process it
starts (Lightbox, storescp, Orthanc) is unreachable from outside; it moves back afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import IN_CI, dcmtk, free_port, require

CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
ORTHANC = "/usr/sbin/Orthanc"
READY_TIMEOUT = 30.0


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


@contextlib.contextmanager
def private_network() -> Iterator[None]:
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            message = f"cannot create a private network namespace: {os.strerror(ctypes.get_errno())} (needs root)"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        try:
            _loopback_up()
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "cannot return to the original network namespace")
    finally:
        os.close(home)


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not listening on {port}")


class StoreSCP:
    """DCMTK storescp writing every received instance to ``folder`` (as received, +B)."""

    def __init__(self, folder: Path, aet: str = "STORESCP", extra: tuple[str, ...] = (), port: int | None = None) -> None:
        self.folder = folder
        self.aet = aet
        self.port = port or free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [dcmtk("storescp"), "-aet", aet, "+B", "-od", str(folder), *extra, str(self.port)],
            env={**os.environ, "TCP_NODELAY": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, self.proc, "storescp")

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Orthanc:
    """Orthanc with a temporary configuration, its storage in ``folder``."""

    def __init__(self, folder: Path, modalities: dict[str, list[Any]], **settings: Any) -> None:
        require(ORTHANC)
        self.dicom_port = free_port()
        self.http_port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "lightbox-test",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "DicomAet": "ORTHANC",
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomModalities": modalities,
            "Plugins": [],
            **settings,
        }
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.log = open(folder / "orthanc.log", "wb")
        self.proc = subprocess.Popen(
            [ORTHANC, str(folder / "orthanc.json")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TCP_NODELAY": "1"},
        )
        wait_port(self.http_port, self.proc, "Orthanc")
        wait_port(self.dicom_port, self.proc, "Orthanc")

    def rest(self, method: str, path: str, body: Any = None, raw: bool = False) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore *_proxy
        with opener.open(request, timeout=120) as rsp:
            content = rsp.read()
        return content if raw else json.loads(content or b"null")

    def save_instances(self, folder: Path) -> list[Path]:
        """Every instance Orthanc holds, as its file, into ``folder``."""
        folder.mkdir(parents=True)
        for n, instance in enumerate(self.rest("GET", "/instances")):
            (folder / f"{n}.dcm").write_bytes(self.rest("GET", f"/instances/{instance}/file", raw=True))
        return sorted(folder.iterdir())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()
