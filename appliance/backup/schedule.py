"""The service's backup loop: runs a backup when the schedule says so (or when asked now, by
the web page's buttons through a ``Trigger``), and a sample verification every
`backup_verify_days`.  Each step is one plain function of the clock and the recorded runs, so
it is the same after a restart.  A run's calls to the bucket go to a child process that lives
as long as the run (``bucket.py``); stopping the service ends the run, recorded as failed."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from appliance.archive import Archive
from appliance.backup.state import CURSOR, BackupState, Busy
from appliance.backup.status import scheduled
from appliance.backup.sync import BackupOptions, run_backup
from appliance.backup.verify import verify_backup
from appliance.config import Settings

LOG = logging.getLogger("lightbox.backup")
TICK = 30.0  # seconds between looks at the schedule (shorter when backup_delay is)
RETRY_AFTER = 900.0  # a failed run is tried again after this long


def backup_options(settings: Settings) -> BackupOptions:
    return BackupOptions(
        bandwidth_kbps=settings.backup_bandwidth_kbps,
        concurrency=max(1, settings.backup_concurrency),
        retention_days=settings.backup_retention_days,
    )


def nightly_due(last_start: float | None, at: str, now: float, zone: dt.tzinfo | None = None) -> bool:
    """Has today's backup time (in the clinic's ``zone``; None: the system's) passed since the
    last run started?"""
    hour, minute = (int(part) for part in at.split(":"))
    local = dt.datetime.fromtimestamp(now, zone)
    slot = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if slot > local:
        slot -= dt.timedelta(days=1)
    return last_start is None or last_start < slot.timestamp()


def backup_due(archive: Archive, state: BackupState, settings: Settings, now: float) -> bool:
    last = state.last_run("backup")
    if last is not None and not last["ok"] and now - last["finished"] < RETRY_AFTER:
        return False
    if settings.backup_schedule == "nightly":
        success = state.last_run("backup", ok=True)  # a failed night is tried again, not skipped
        return nightly_due(success["started"] if success else None, settings.backup_time, now, archive.site.zone())
    if settings.backup_schedule == "continuous":
        newest = archive.changes_after(archive.last_change() - 1, 1)
        behind = archive.cursor(CURSOR) < archive.last_change()
        return behind and bool(newest) and now - newest[0].at >= settings.backup_delay
    return False


def verify_due(state: BackupState, settings: Settings, now: float) -> bool:
    if settings.backup_verify_days <= 0 or state.last_run("backup", ok=True) is None:
        return False
    last = state.last_run("verify")
    return last is None or now - last["started"] >= settings.backup_verify_days * 86400


class Trigger:
    """Work asked for now ("backup", "verify") and what the loop is doing, shared between the
    loop's thread and the web server's (in memory: a restart forgets a request not yet taken)."""

    KINDS = ("backup", "verify")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._asked: set[str] = set()
        self._activity: dict[str, Any] | None = None
        self._refused = ""  # why the last asked run did not start

    def ask(self, kind: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown backup work {kind!r}")
        with self._lock:
            self._asked.add(kind)
            self._refused = ""
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def wait(self, timeout: float) -> None:
        self._wake.wait(timeout)
        with self._lock:
            if not self._asked:
                self._wake.clear()

    def take(self, kind: str) -> bool:
        with self._lock:
            if kind not in self._asked:
                return False
            self._asked.discard(kind)
            self._activity = _started(kind)  # at once: the page never sees it idle in between
            return True

    def run(self, kind: str, work: Callable[[Callable[[int, int], None]], Any], asked: bool) -> None:
        """Run ``work(progress)``, showing its progress; a Busy lock is noted if it was asked for."""

        def progress(done: int, total: int) -> None:
            with self._lock:
                self._activity = {**self._activity, "done": done, "total": total}  # type: ignore[dict-item]

        with self._lock:
            self._activity = _started(kind)
        try:
            work(progress)
        except Busy as exc:
            if asked:
                with self._lock:
                    self._refused = f"{kind}: {exc}"
            raise
        finally:
            with self._lock:
                self._activity = None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"running": self._activity, "asked": sorted(self._asked), "refused": self._refused}


def _started(kind: str) -> dict[str, Any]:
    return {"kind": kind, "started": time.time(), "done": 0, "total": 0}


def backup_loop(
    archive: Archive, settings: Settings, stopping: threading.Event, trigger: Trigger | None = None
) -> None:
    """Runs until ``stopping`` is set (a thread of the service; ``trigger.wake()`` ends a wait)."""
    trigger = trigger or Trigger()
    state = BackupState(archive.data_dir, settings.backup_checksums)
    tick = min(TICK, max(1.0, float(settings.backup_delay)))
    while not stopping.is_set():
        trigger.wait(tick)
        if stopping.is_set():
            break
        try:
            if not state.configured:
                # No backup will ever take the originals an identity edit kept: keep them a while.
                archive.corrections.release_superseded(older_than=time.time() - settings.superseded_keep_days * 86400)
                continue
            current = scheduled(settings, state)  # the web page may have changed it
            now = time.time()
            if (asked := trigger.take("backup")) or backup_due(archive, state, current, now):
                options = backup_options(current)
                trigger.run("backup", functools.partial(run_backup, archive, state, options, stopping=stopping), asked)
            elif (asked := trigger.take("verify")) or verify_due(state, current, now):
                sample = current.backup_verify_sample_pct
                trigger.run("verify", functools.partial(verify_backup, state, sample, stopping=stopping), asked)
        except Busy:
            pass  # `lightbox backup run` or `verify` is at it
        except Exception:  # keep the service up; the next tick tries again
            LOG.exception("backup_loop_failed")
    state.close()
