"""What a status page, `backup status` and local eviction need to know, as plain data."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from appliance.archive import Archive
from appliance.backup.setup import SHEET_CONFIRMED
from appliance.backup.state import CURSOR, BackupState
from appliance.config import BY_NAME, SETTINGS, Settings

STALE_AFTER = {"nightly": 36 * 3600.0, "continuous": 6 * 3600.0, "manual": 8 * 86400.0}
SCHEDULE_SETTINGS = ("backup_schedule", "backup_time", "backup_delay")
_SCHEDULE_KEY = "schedule"  # in the state's kv table: the schedule chosen on the web page
_HH_MM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def scheduled(settings: Settings, state: BackupState) -> Settings:
    """``settings`` with the schedule saved by ``save_schedule`` (the web page), which wins over
    the file, the environment and the flags: the admin chose it last."""
    saved = json.loads(state.get(_SCHEDULE_KEY) or "{}") if state.configured else {}
    return dataclasses.replace(settings, values={**settings.values, **saved}) if saved else settings


def parse_schedule(values: Mapping[str, Any]) -> dict[str, Any]:
    """The schedule settings among ``values``, checked (others are ignored); raises ValueError."""
    parsed = {name: BY_NAME[name].parse(values[name]) for name in SCHEDULE_SETTINGS if name in values}
    if "backup_time" in parsed and not _HH_MM.fullmatch(parsed["backup_time"]):
        raise ValueError(f"backup_time: expected HH:MM, got {parsed['backup_time']!r}")
    if parsed.get("backup_delay", 0) < 0:
        raise ValueError("backup_delay: expected zero or more seconds")
    return parsed


def save_schedule(state: BackupState, parsed: Mapping[str, Any]) -> None:
    """Keep a schedule from ``parse_schedule``; ``scheduled`` applies it."""
    state.put(_SCHEDULE_KEY, json.dumps({**json.loads(state.get(_SCHEDULE_KEY) or "{}"), **parsed}))


def backup_settings(settings: Settings, state: BackupState | None = None) -> dict[str, Any]:
    """The backup_* settings with their values (a settings page shows and edits these), with
    the saved schedule when ``state`` is given."""
    values = scheduled(settings, state).values if state is not None else settings.values
    return {s.name: values[s.name] for s in SETTINGS if s.name.startswith("backup_")}


def backup_status(archive: Archive, state: BackupState, settings: Settings, now: float | None = None) -> dict[str, Any]:
    """Configured?  Last success, pending work, lag, verification, and warnings to show:
    not_configured, failing, stale, never_succeeded, verification_failed, never_verified,
    damaged_files, sheet_unconfirmed."""
    now = time.time() if now is None else now
    if not state.configured:
        return {"configured": False, "warnings": ["not_configured"]}
    settings = scheduled(settings, state)
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
    if state.get(SHEET_CONFIRMED) == "":
        warnings.append("sheet_unconfirmed")
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
        if not instance_backup_verified(state, instance.sop_uid, instance.sha256):
            return False
    return found


def instance_backup_verified(state: BackupState, sop_uid: str, sha256: str) -> bool:
    """Whether the instance, as stored now (``sha256``), is in the bucket and its object was
    downloaded, decrypted and found equal since (the backup's own verification, which samples:
    an object not yet sampled is not verified)."""
    rows = state.objects_of(sop_uid)
    return any(r.sha256 == sha256 and r.deleted_at is None and r.verified_at for r in rows)


def verified_in_backup(data_dir: Path, instances: Collection[tuple[str, str]]) -> set[str]:
    """Of (SOP Instance UID, sha256) pairs, the UIDs of those ``instance_backup_verified``:
    storage commitment's ``commitment_requires_backup`` (any thread: the state is opened here)."""
    with BackupState(data_dir) as state:
        if not state.configured:
            return set()
        return {uid for uid, sha256 in instances if instance_backup_verified(state, uid, sha256)}
