"""What a status page, `backup status` and local eviction need to know, as plain data."""

from __future__ import annotations

import json
import time
from typing import Any

from appliance.archive import Archive
from appliance.backup.state import CURSOR, BackupState
from appliance.config import SETTINGS, Settings

STALE_AFTER = {"nightly": 36 * 3600.0, "continuous": 6 * 3600.0, "manual": 8 * 86400.0}


def backup_settings(settings: Settings) -> dict[str, Any]:
    """The backup_* settings with their values (a settings page shows and edits these)."""
    return {s.name: settings.values[s.name] for s in SETTINGS if s.name.startswith("backup_")}


def backup_status(archive: Archive, state: BackupState, settings: Settings, now: float | None = None) -> dict[str, Any]:
    """Configured?  Last success, pending work, lag, verification, and warnings to show:
    not_configured, failing, stale, never_succeeded, verification_failed, never_verified,
    damaged_files."""
    now = time.time() if now is None else now
    if not state.configured:
        return {"configured": False, "warnings": ["not_configured"]}
    pending, pending_bytes, oldest = archive.pending_after(archive.cursor(CURSOR))
    last = state.last_run("backup")
    success = state.last_run("backup", ok=True)
    verify = state.last_run("verify")
    verified = state.last_run("verify", ok=True)
    warnings = []
    if last is not None and not last["ok"]:
        warnings.append("failing")
    if success is None:
        warnings.append("never_succeeded")
    elif now - success["finished"] > STALE_AFTER[settings.backup_schedule]:
        warnings.append("stale")
    if verify is not None and not verify["ok"]:
        warnings.append("verification_failed")
    if verified is None:
        warnings.append("never_verified")
    damaged = len(json.loads(state.get("damaged") or "[]"))
    if damaged:
        warnings.append("damaged_files")
    return {
        "configured": True,
        "target": state.target().public(),
        "schedule": settings.backup_schedule,
        "last_run": last,
        "last_success_at": success["finished"] if success else None,
        "pending_objects": pending,
        "pending_bytes": pending_bytes,
        "lag_seconds": now - oldest if oldest is not None else 0.0,
        **state.totals(),
        "last_verify": verify,
        "last_verified_restore_at": verified["finished"] if verified else None,
        "damaged_files": damaged,  # stored files that no longer match the index: not backed up
        "warnings": warnings,
    }


def study_backup_verified(archive: Archive, state: BackupState, study_uid: str) -> bool:
    """True when every instance of the study, as stored now, is in the bucket and its object
    was downloaded, decrypted and found equal since.  Only then may local eviction drop it."""
    if not state.configured:
        return False
    found = False
    for instance in archive.stored_instances(study_uid):
        found = True
        rows = state.objects_of(instance.sop_uid)
        if not any(r.sha256 == instance.sha256 and r.deleted_at is None and r.verified_at for r in rows):
            return False
    return found
