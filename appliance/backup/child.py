"""Backup work in a child process, seen from the service: start ``python -m appliance.backup``
(see ``__main__.py``) with one job, pass on its reports, stop it when the service stops, and
record a run it could not finish.

Why a child: boto3, botocore and an S3 client cost ~45 MB that a process never gives back
(deleting the client and malloc_trim return < 1 MB), and a backup runs every night or every
few minutes.  Why a new interpreter rather than a fork: a fork starts from the service's heap
(its pages shared until either side writes them) and from its threads' locks in whatever state
they were; ``python -m`` starts clean and needs nothing systemd's sandbox forbids.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from appliance.backup.setup import RecoverySheet
from appliance.backup.state import BackupState, Busy
from appliance.backup.target import Target, TargetError

LOG = logging.getLogger("lightbox.backup")
GRACE = 20.0  # seconds a stopped child has to record its run before it is killed
POLL = 0.5  # seconds between looks at ``stopping`` while a child runs
Progress = Callable[[int, int], None]


def job(kind: str, data_dir: Path, checksums: str, log_level: str, **work: Any) -> dict[str, Any]:
    """What a child needs to know: the service's settings as they are now (flags included),
    never read again from the file or the environment."""
    return {
        "kind": kind,
        "parent": os.getpid(),
        "data_dir": str(data_dir),
        "checksums": checksums,
        "log_level": log_level,
        **work,
    }


def run(work: dict[str, Any], state: BackupState, stopping: threading.Event, progress: Progress | None = None) -> None:
    """Run a backup or verification ``work`` (a ``job``) in a child until it ends; raises Busy
    if another run holds the lock.  A child that died without recording its run (killed,
    crashed, out of memory) gets it recorded as failed here."""
    before = state.newest_run_id()
    busy: list[str] = []

    def take(report: dict[str, Any]) -> None:
        if "progress" in report and progress is not None:
            progress(*report["progress"])
        if "busy" in report:
            busy.append(report["busy"])

    try:
        status, stopped = _run_child(work, take, stopping)
        what = f"{'was stopped with the service' if stopped else _ended(status)} before recording its run"
    except OSError as exc:  # fork or exec failed (out of memory, no interpreter)
        status, what = -1, f"could not start: {exc}"
    if busy:
        raise Busy(busy[0])
    if status != 0:
        LOG.error("backup_child_failed kind=%s status=%d", work["kind"], status)
        error = f"the {work['kind']} process {what}"
        state.record_lost_run(
            work["kind"], before, {"error": error} if work["kind"] == "backup" else {"problems": [error]}
        )


def set_up(work: dict[str, Any], target: Target, passphrase: str) -> RecoverySheet:
    """`lightbox backup init` in a child (``work``: a ``job`` of kind "init"); raises
    TargetError as init_backup does."""
    answer: dict[str, Any] = {}
    try:
        status, _ = _run_child({**work, "target": asdict(target), "passphrase": passphrase}, answer.update, None)
    except OSError as exc:
        raise TargetError(f"the set-up process could not start: {exc}") from None
    if "error" in answer:
        raise TargetError(answer["error"])
    if "sheet" not in answer:
        raise TargetError(f"the set-up process {_ended(status)}; see the service's log")
    sheet = answer["sheet"]
    return RecoverySheet(sheet["secret_key"], sheet["recipient"], target, sheet["created"])


def _ended(status: int) -> str:
    return f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"


def _run_child(
    work: dict[str, Any], take: Callable[[dict[str, Any]], None], stopping: threading.Event | None
) -> tuple[int, bool]:
    """Start the child, hand it ``work``, give each report to ``take`` until it exits; SIGTERM
    it once ``stopping`` is set, SIGKILL it GRACE seconds later.  Returns its exit status
    (negative: the signal that killed it) and whether it was stopped."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.backup"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )  # stderr: the service's own, so its log lines go where the service's go
    assert proc.stdin is not None and proc.stdout is not None
    with proc.stdout:
        try:
            proc.stdin.write(json.dumps(work).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it died at once: its status says why
        fd, pending, deadline, ended = proc.stdout.fileno(), b"", None, False
        while not ended or proc.poll() is None:
            if stopping is not None and stopping.is_set() and deadline is None:
                proc.terminate()
                deadline = time.monotonic() + GRACE
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
            if ended:  # its reports ended: it is exiting
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(POLL)
            elif select.select([fd], [], [], POLL)[0]:
                chunk = os.read(fd, 1 << 16)
                ended = not chunk
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    take(json.loads(line))
    return proc.returncode, deadline is not None
