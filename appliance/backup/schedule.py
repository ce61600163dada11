"""The service's backup loop: runs a backup when the schedule says so, and a sample
verification every `backup_verify_days`.  Each step is one plain function of the clock and
the recorded runs, so it is the same after a restart."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from appliance.archive import Archive
from appliance.backup.state import CURSOR, BackupState, Busy
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


def nightly_due(last_start: float | None, at: str, now: float) -> bool:
    """Has today's (local) backup time passed since the last run started?"""
    hour, minute = (int(part) for part in at.split(":"))
    local = dt.datetime.fromtimestamp(now)
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
        return nightly_due(success["started"] if success else None, settings.backup_time, now)
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


def backup_loop(archive: Archive, settings: Settings, stopping: threading.Event) -> None:
    """Runs until ``stopping`` is set (a thread of the service)."""
    state = BackupState(archive.data_dir, settings.backup_checksums)
    tick = min(TICK, max(1.0, float(settings.backup_delay)))
    while not stopping.wait(tick):
        try:
            if not state.configured:
                continue
            now = time.time()
            if backup_due(archive, state, settings, now):
                run_backup(archive, state, backup_options(settings))
            elif verify_due(state, settings, now):
                verify_backup(state, settings.backup_verify_sample_pct)
        except Busy:
            pass  # `lightbox backup run` or `verify` is at it
        except Exception:  # keep the service up; the next tick tries again
            LOG.exception("backup_loop_failed")
    state.close()
