"""The Backup page (admin): status with its warnings, set-up with the recovery sheet shown once,
the schedule, "Back up now" and "Verify a sample now"; and their JSON twins.  Thin: the work is
appliance.backup's (the same calls as `lightbox backup init | status`, and the service's loop)."""

from __future__ import annotations

import logging
import time
from typing import Any

import bottle
from bottle import request, response

from appliance import config
from appliance.archive import Archive, audit
from appliance.backup.schedule import Trigger
from appliance.backup.setup import (
    LOSS_WARNING,
    MIN_PASSPHRASE,
    await_sheet_confirmation,
    confirm_sheet,
    init_backup,
)
from appliance.backup.state import BackupState
from appliance.backup.status import backup_settings, backup_status, parse_schedule, save_schedule
from appliance.backup.target import Target, TargetError
from appliance.web import display
from appliance.web.auth import Guard, fail
from appliance.web.templates import render

LOG = logging.getLogger("lightbox.web.backup")


def when(stamp: float | None) -> str:
    return display.when(stamp) if stamp else "never"


def size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h" if seconds < 172800 else f"{seconds / 86400:.0f} days"


def warning_text(code: str, status: dict[str, Any], now: float | None = None) -> str:
    """One sentence an admin can act on, for each warning of ``backup_status``."""
    now = time.time() if now is None else now
    last, verify = status.get("last_run") or {}, status.get("last_verify") or {}
    success = status.get("last_success_at")
    texts = {
        "not_configured": "Backup is not set up: if this box's disk dies, the archive is lost. Set it up below.",
        "failing": f"The last backup run failed ({when(last.get('finished'))}): {last.get('error', '')}",
        "never_succeeded": "No backup run has succeeded yet: nothing is safe off-site.",
        "stale": f"No successful backup for {duration(now - success) if success else '?'}: "
        f"longer than the {status.get('schedule')} schedule expects.",
        "verification_failed": "The last verification found problems: " + "; ".join(verify.get("problems", [])[:3]),
        "never_verified": "The backup has never been verified (downloaded, decrypted and checked against its manifest).",
        "damaged_files": f"{status.get('damaged_files')} stored files no longer match the index and are not backed up: "
        "run `lightbox verify`.",
        "sheet_unconfirmed": "Nobody confirmed that the recovery sheet was printed or stored, and it cannot be shown "
        "again: keep the passphrase safe. " + LOSS_WARNING,
    }
    return texts.get(code, code)


def setup_form_values(settings: config.Settings, state: BackupState) -> dict[str, Any]:
    """What ``backup_setup.tpl`` (the set-up form and the recovery sheet) needs."""
    return {
        "conf": backup_settings(settings, state),
        "schedules": config.BY_NAME["backup_schedule"].choices,
        "min_passphrase": MIN_PASSPHRASE,
        "loss_warning": LOSS_WARNING,
    }


def install(
    app: bottle.Bottle,
    archive: Archive,
    guard: Guard,
    settings: config.Settings | None = None,
    trigger: Trigger | None = None,
) -> None:
    settings = settings or config.load({"data": str(archive.data_dir)}, environ={})
    trigger = trigger or Trigger()  # without the service's loop (a test's app), asked work only waits

    def backup_state() -> BackupState:
        return BackupState(archive.data_dir, settings.backup_checksums)  # one connection per request, closed after

    def overview(state: BackupState) -> dict[str, Any]:
        status = backup_status(archive, state, settings)
        return {
            "status": status,
            "warnings": [{"code": c, "text": warning_text(c, status)} for c in status["warnings"]],
            "settings": backup_settings(settings, state),
            "activity": trigger.snapshot(),
        }

    def configured_state(state: BackupState) -> BackupState:
        if not state.configured:
            raise fail(409, "backup is not set up yet")
        return state

    @app.get("/admin/backup")
    @guard("admin")
    def backup_page():
        with backup_state() as state:
            info = overview(state)
            form = setup_form_values(settings, state)
        return render(
            "backup.tpl", user=guard.user(), csrf=guard.csrf_token(), section="backup", info=info, when=when,
            size=size, duration=duration, **form,
        )  # fmt: skip

    @app.get("/api/backup")
    @guard("admin")
    def backup_api() -> dict:
        with backup_state() as state:
            return overview(state)

    @app.post("/api/backup/setup")
    @guard("admin")
    def setup() -> dict:
        """`lightbox backup init` from a form; the answer holds the recovery key, once."""
        form = request.forms

        def field(name: str, default: str = "") -> str:
            return form.getunicode(name, default).strip() or default

        passphrase = form.getunicode("passphrase", "")
        if passphrase != form.getunicode("passphrase2", ""):
            raise fail(400, "the two passphrases differ")
        endpoint = field("endpoint")
        if endpoint and not endpoint.startswith(("https://", "http://")):
            raise fail(400, "the endpoint must be a URL (https://...), or empty for AWS S3")
        if not field("bucket"):
            raise fail(400, "the bucket name is missing")
        try:
            schedule = parse_schedule(form)
        except ValueError as exc:
            raise fail(400, str(exc)) from None
        target = Target(
            bucket=field("bucket"),
            endpoint=endpoint,
            prefix=field("prefix", "lightbox"),
            region=field("region", "us-east-1"),
            access_key_id=field("access_key_id"),
            secret_access_key=form.getunicode("secret_access_key", ""),
            path_style=field("addressing", "path") != "virtual",
        )
        with backup_state() as state:
            try:
                sheet = init_backup(state, target, passphrase)
            except TargetError as exc:
                raise fail(400, str(exc)) from None
            save_schedule(state, schedule)
            await_sheet_confirmation(state)
        LOG.info("backup_setup target=%s", target.describe())
        guard.audit(
            audit.SECURITY_ALERT, action="C", detail=f"backup set up: {target.describe()}, key {sheet.recipient}"
        )
        return {
            "ok": True,
            "recovery_sheet": {
                "secret_key": sheet.secret_key,
                "public_key": sheet.recipient,
                "target": target.describe(),
                "created": when(sheet.created),
                "qr": sheet.qr_data_uri(),
            },
        }

    @app.post("/api/backup/sheet-confirmed")
    @guard("admin")
    def sheet_confirmed() -> dict:
        if request.forms.get("stored") != "yes":
            raise fail(400, "tick the box once the sheet is printed or stored")
        with backup_state() as state:
            confirm_sheet(configured_state(state), time.time())
            guard.audit(audit.SECURITY_ALERT, action="U", detail="backup recovery sheet printed or stored")
            return overview(state)

    @app.post("/api/backup/schedule")
    @guard("admin")
    def schedule() -> dict:
        try:
            parsed = parse_schedule(request.forms)
        except ValueError as exc:
            raise fail(400, str(exc)) from None
        with backup_state() as state:
            save_schedule(configured_state(state), parsed)
            guard.audit(audit.APPLICATION_ACTIVITY, action="U", detail="backup schedule: " + ", ".join(
                f"{k}={v}" for k, v in parsed.items()
            ))  # fmt: skip
            return overview(state)

    def ask(kind: str) -> dict:
        with backup_state() as state:
            configured_state(state)
            trigger.ask(kind)
            guard.audit(audit.APPLICATION_ACTIVITY, action="E", detail=f"backup: {kind} asked for now")
            response.status = 202
            return overview(state)

    @app.post("/api/backup/run")
    @guard("admin")
    def run_now() -> dict:
        return ask("backup")

    @app.post("/api/backup/verify")
    @guard("admin")
    def verify_now() -> dict:
        return ask("verify")
