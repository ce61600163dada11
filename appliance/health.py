"""Is the service working?  The checks behind systemd's watchdog and its STATUS= line.

A round asks each part as a client would: a C-ECHO on every DICOM port (answered by whichever
worker accepts it, which reads the index to serve it) and GET /healthz on the web port (served
by a web thread, which reads the index for its counts).  Only a round in which every part
answered feeds the watchdog (WATCHDOG=1): frozen workers, a web server whose threads are all
stuck, or an index that cannot be read stop the pings, and systemd restarts the service after
``WatchdogSec=``.  A low disk is told in STATUS= but is no reason to restart.
"""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import systemd
from appliance.backup.state import BackupState
from appliance.dicom.probe import ProbeFailed, echo

LOG = logging.getLogger("lightbox.health")

STATUS_EVERY = 30.0  # seconds between rounds when systemd has no watchdog for us
MAX_ANSWER = 65536  # bytes of /healthz read


def probe_aet() -> str:
    """A calling AE title for the C-ECHO probes that no peer can guess (64 random bits)."""
    return secrets.token_hex(8).upper()


@dataclass(frozen=True)
class Targets:
    dicom: tuple[tuple[str, int], ...]  # (host, port) of each DICOM listening socket
    http: tuple[str, int]
    aet: str  # Lightbox's, called by the probe
    probe_aet: str  # the probe's own (DicomOptions.health_aet)
    dicom_tls: tuple[tuple[str, int], ...] = ()  # the DICOM TLS ports, asked over TLS
    tls: ssl.SSLContext | None = None  # shows and trusts the box's own certificate


@dataclass
class Round:
    problems: list[str] = field(default_factory=list)
    health: dict[str, Any] | None = None  # /healthz's answer


def check(targets: Targets, timeout: float) -> Round:
    """One round: every port asked once, each step within ``timeout`` seconds."""
    answer = Round()
    tls_ports = [(address, targets.tls) for address in targets.dicom_tls]
    for (host, port), tls in [*((address, None) for address in targets.dicom), *tls_ports]:
        try:
            echo(host, port, targets.aet, targets.probe_aet, timeout, tls)
        except ProbeFailed as exc:
            answer.problems.append(f"DICOM {'TLS ' if tls else ''}port {port} does not answer ({exc})")
    try:
        answer.health = healthz(*targets.http, timeout)
    except (OSError, ValueError) as exc:
        answer.problems.append(f"web port {targets.http[1]} does not answer ({exc})")
    return answer


def healthz(host: str, port: int, timeout: float) -> dict[str, Any]:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        body = response.read(MAX_ANSWER)
    finally:
        connection.close()
    if response.status != 200:
        raise ValueError(f"/healthz answered {response.status}")
    return json.loads(body)


def status_line(answer: Round, backup: str) -> str:
    """``serving, 1,234 studies, backup 2 h ago``, or what is wrong."""
    if answer.problems or answer.health is None:
        return "unhealthy: " + "; ".join(answer.problems)
    health = answer.health
    serving = "serving" if health["status"] == "ok" else f"disk low ({health['free_disk_bytes'] >> 20} MB free)"
    return f"{serving}, {health['counts']['studies']:,} studies, {backup}"


def backup_words(state: BackupState, now: float) -> str:
    if not state.configured:
        return "backup not set up"
    last = state.last_run("backup")
    success = state.last_run("backup", ok=True)
    words = f"backup {ago(now - success['finished'])} ago" if success else "never backed up"
    return words + (", last run failed" if last is not None and not last["ok"] else "")


def ago(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {unit}"
    return f"{max(0, int(seconds))} s"


class Watchdog:
    """The health rounds of a service under systemd: READY=1 after the first good one, then
    WATCHDOG=1 after each good one and a STATUS= line after every one."""

    def __init__(self, targets: Targets, data_dir: Path, stopping: threading.Event) -> None:
        self.targets = targets
        self.stopping = stopping
        self.period = systemd.watchdog_period()
        # Three rounds within the watchdog's period, so one slow round is not fatal.
        self.every = self.period / 3 if self.period else STATUS_EVERY
        self.timeout = self.every / 2
        self.backup = BackupState(data_dir)
        self._failing = False

    def ready(self, within: float) -> None:
        """Wait until a round passes (every port answers), then say READY=1; raise
        RuntimeError after ``within`` seconds of failing rounds."""
        deadline = time.monotonic() + within
        while True:
            answer = check(self.targets, self.timeout)
            if not answer.problems:
                systemd.notify("READY=1", "STATUS=" + self._status(answer))
                return
            if time.monotonic() > deadline or self.stopping.wait(1.0):
                raise RuntimeError("not ready: " + "; ".join(answer.problems))

    def run(self) -> None:
        """Rounds until the service stops (a thread of its own)."""
        while not self.stopping.wait(self.every):
            answer = check(self.targets, self.timeout)
            if self.stopping.is_set():
                break  # a round cut short by the stop is no news
            self._log_change(answer)
            lines = ["STATUS=" + self._status(answer)]
            if not answer.problems and self.period:
                lines.append("WATCHDOG=1")
            systemd.notify(*lines)
        self.backup.close()

    def _status(self, answer: Round) -> str:
        try:
            backup = backup_words(self.backup, time.time())
        except Exception as exc:  # the backup's state is no part of serving
            backup = f"backup state unreadable ({exc})"
        return status_line(answer, backup)

    def _log_change(self, answer: Round) -> None:
        if answer.problems and not self._failing:
            LOG.warning("health_failing problems=%r", "; ".join(answer.problems))
        elif self._failing and not answer.problems:
            LOG.info("health_ok")
        self._failing = bool(answer.problems)
