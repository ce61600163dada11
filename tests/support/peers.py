"""Independent DICOM peers for tests: DCMTK's storescp and Orthanc (in a private network:
neither can bind to 127.0.0.1 only, see support.netns)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from support.ports import free_port, wait_port
from support.tools import dcmtk, require

ORTHANC = "/usr/sbin/Orthanc"
ORTHANC_DICOMWEB = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"  # Debian package orthanc-dicomweb


class StoreSCP:
    """DCMTK storescp writing every received instance to ``folder`` (as received, +B)."""

    def __init__(
        self, folder: Path, aet: str = "STORESCP", extra: tuple[str, ...] = (), port: int | None = None
    ) -> None:
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
