"""`lightbox serve` as a process on 127.0.0.1, with its own data folder and ports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from support.ports import free_port
from support.tools import dcmtk


class LightboxProcess:
    """`python -m appliance serve` on 127.0.0.1 with its own data folder and ports."""

    def __init__(self, data: Path, aet: str = "LIGHTBOX", **settings: object) -> None:
        self.data = data
        self.aet = aet
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.https_port = free_port()
        self.dicom_tls_port = free_port()
        # mDNS only where a test asks for it (test_discovery, in a private network namespace).
        self.settings = {"stable_age": 60, "min_free_mb": 0, "discovery": False, **settings}
        self.proc: subprocess.Popen | None = None
        self.log_path = data.parent / f"{data.name}-server.log"

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "appliance", "serve",
            "--data", str(self.data), "--aet", self.aet, "--host", "127.0.0.1",
            "--dicom-port", str(self.dicom_port), "--http-port", str(self.http_port),
            "--https-port", str(self.https_port), "--dicom-tls-port", str(self.dicom_tls_port),
        ]  # fmt: skip
        for name, value in self.settings.items():
            cmd += ["--" + name.replace("_", "-"), str(value)]
        return cmd

    def start(self, timeout: float = 30) -> LightboxProcess:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lightbox exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.health()  # HTTP starts after the DICOM listener, so both are up
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"lightbox did not become ready:\n{self.log()}")

    def health(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=5) as rsp:
            return json.load(rsp)

    def count(self, level: str = "instances") -> int:
        return self.health()["counts"][level]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run another `lightbox` subcommand on the same data folder."""
        return subprocess.run(
            [sys.executable, "-m", "appliance", *args, "--data", str(self.data)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def storescu(self, *paths: str | Path, aet: str = "STORESCU", extra: tuple[str, ...] = (),
                 timeout: float = 300) -> subprocess.CompletedProcess:  # fmt: skip
        return subprocess.run(
            [
                dcmtk("storescu"),
                "-v",
                "-aet",
                aet,
                "-aec",
                self.aet,
                *extra,
                "127.0.0.1",
                str(self.dicom_port),
                *map(str, paths),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "TCP_NODELAY": "1"},
        )

    def echoscu(self, aet: str = "ECHOSCU") -> subprocess.CompletedProcess:
        return subprocess.run(
            [dcmtk("echoscu"), "-aet", aet, "-aec", self.aet, "127.0.0.1", str(self.dicom_port)],
            capture_output=True,
            text=True,
            timeout=60,
        )


@contextlib.contextmanager
def running(data: Path, **settings: object) -> Iterator[LightboxProcess]:
    """A started `lightbox serve`, stopped on leaving (its start-up costs about a second)."""
    lightbox = LightboxProcess(data, **settings).start()
    try:
        yield lightbox
    finally:
        lightbox.stop()
