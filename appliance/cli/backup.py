"""`lightbox backup init | run | status | verify` and `lightbox restore`: thin calls into the
functions the service's loop uses, with progress bars and a summary."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from appliance.archive import Archive
from appliance.cli.common import Command, add_command, fail, settings_of
from appliance.config import Settings
from appliance.progress import ProgressBar

BACKUP_SETTINGS = (
    "data",
    "backup_bandwidth_kbps",
    "backup_concurrency",
    "backup_retention_days",
    "backup_checksums",
    "backup_schedule",
)
PASSPHRASE_ENV = "LIGHTBOX_BACKUP_PASSPHRASE"


def add_commands(sub: argparse._SubParsersAction) -> None:
    def bind(func: Callable[[argparse.Namespace, Settings], int]) -> Command:
        return lambda args: func(args, settings_of(args))

    backup = sub.add_parser("backup", help="Encrypted off-site backup to an S3-compatible bucket.")
    actions = backup.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    p = add_command(
        actions,
        "init",
        bind(cmd_init),
        "Set up the backup: bucket, credentials, passphrase; prints the recovery sheet once.",
        BACKUP_SETTINGS,
    )
    _bucket_flags(p, "--bucket")
    p.add_argument(
        "--passphrase-file", metavar="FILE", help=f"read the passphrase from FILE (else ${PASSPHRASE_ENV}, else asked)"
    )
    add_command(actions, "run", bind(cmd_run), "Back up what changed since the last run.", BACKUP_SETTINGS)
    p = add_command(
        actions,
        "status",
        bind(cmd_status),
        "Last success, pending objects and bytes, lag, verification.",
        BACKUP_SETTINGS,
    )
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p = add_command(
        actions,
        "verify",
        bind(cmd_verify),
        "Download, decrypt and check objects against the manifest; exit 1 on any problem.",
        BACKUP_SETTINGS,
    )
    p.add_argument(
        "--sample", type=float, default=100.0, metavar="PCT", help="check PCT percent of the objects (default: all)"
    )
    p = add_command(
        sub,
        "restore",
        cmd_restore,
        "Rebuild an archive on a new box from a backup bucket "
        "(needs its credentials and the passphrase or recovery key).",
        (),
    )
    _bucket_flags(p, "--from-bucket")
    p.add_argument("--to", required=True, metavar="DIR", help="the new, empty data folder")
    key = p.add_mutually_exclusive_group()
    key.add_argument(
        "--passphrase-file", metavar="FILE", help=f"read the passphrase from FILE (else ${PASSPHRASE_ENV}, else asked)"
    )
    key.add_argument(
        "--recovery-key-file", metavar="FILE", help="read the recovery key (AGE-SECRET-KEY-1...) from FILE"
    )


def _bucket_flags(p: argparse.ArgumentParser, bucket_flag: str) -> None:
    p.add_argument(bucket_flag, dest="bucket", required=True, help="bucket name")
    p.add_argument(
        "--endpoint", default="", help="S3 endpoint URL of a clone (B2, Wasabi, R2, MinIO...); empty: AWS S3"
    )
    p.add_argument("--prefix", default="lightbox", help="folder in the bucket (default: lightbox)")
    p.add_argument("--region", default="us-east-1", help="region (default: us-east-1)")
    p.add_argument(
        "--virtual-hosted-style",
        action="store_true",
        help="address the bucket as BUCKET.endpoint (default: path-style)",
    )
    p.add_argument(
        "--access-key-id", default=os.environ.get("AWS_ACCESS_KEY_ID", ""), help="default: $AWS_ACCESS_KEY_ID"
    )
    p.add_argument(
        "--secret-access-key",
        default=os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        help="default: $AWS_SECRET_ACCESS_KEY (prefer the environment: flags show in ps)",
    )


def _target(args: argparse.Namespace):
    from appliance.backup.target import Target

    return Target(
        bucket=args.bucket,
        endpoint=args.endpoint,
        prefix=args.prefix,
        region=args.region,
        access_key_id=args.access_key_id,
        secret_access_key=args.secret_access_key,
        path_style=not args.virtual_hosted_style,
    )


def _passphrase(args: argparse.Namespace, confirm: bool) -> str:
    if args.passphrase_file:
        return Path(args.passphrase_file).read_text().rstrip("\r\n")
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    first = getpass.getpass("backup passphrase: ")
    if confirm and getpass.getpass("again: ") != first:
        raise SystemExit("lightbox: the passphrases differ")
    return first


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.backup.setup import LOSS_WARNING, init_backup
    from appliance.backup.state import BackupState
    from appliance.backup.target import TargetError

    state = BackupState(settings.data_dir, settings.backup_checksums)
    try:
        sheet = init_backup(state, _target(args), _passphrase(args, confirm=True))
    except TargetError as exc:
        return fail(f"backup init: {exc}")
    print(sheet.text())
    print(f"\nbackup set up: {sheet.target.describe()}; first run: lightbox backup run")
    print(f"The web UI and `backup status` never show this key again. {LOSS_WARNING}", file=sys.stderr)
    return 0


def _archive(settings: Settings) -> Archive:
    """The archive with default options: the backup never ingests or queries, and going
    around appliance.service keeps the DICOM and web servers' modules (~10 MB) out."""
    return Archive(settings.data_dir)


def _configured_state(settings: Settings):
    from appliance.backup.state import BackupState

    state = BackupState(settings.data_dir, settings.backup_checksums)
    if not state.configured:
        raise SystemExit("lightbox: backup is not set up; run: lightbox backup init --bucket ...")
    return state


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.backup.schedule import backup_options
    from appliance.backup.state import Busy
    from appliance.backup.sync import run_backup

    state = _configured_state(settings)
    with _archive(settings) as archive:
        try:
            report = run_backup(archive, state, backup_options(settings), ProgressBar("backing up"))
        except Busy as exc:
            return fail(exc)
    print(
        f"uploaded: {report.uploaded} ({report.uploaded_bytes / 1e6:.1f} MB)  found uploaded: {report.already_there}  "
        f"deletions recorded: {report.deleted}  purged: {report.purged}  kept by the bucket: {report.purge_refused}  "
        f"manifest: {report.manifest or 'unchanged'}"
    )
    return 0 if report.ok else fail(f"backup failed: {report.error}")


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.backup.state import BackupState
    from appliance.backup.status import backup_status

    with _archive(settings) as archive:
        status = backup_status(archive, BackupState(settings.data_dir, settings.backup_checksums), settings)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    if not status["configured"]:
        print("backup: not set up (lightbox backup init)")
        return 1

    def when(stamp: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "never"

    last = status["last_run"]
    print(f"target: s3://{status['target']['bucket']}/{status['target']['prefix']}  schedule: {status['schedule']}")
    print(f"last success: {when(status['last_success_at'])}")
    if last and not last["ok"]:
        print(f"last run FAILED at {when(last['finished'])}: {last.get('error', '')}")
    print(
        f"pending: {status['pending_objects']} objects, {status['pending_bytes'] / 1e6:.1f} MB; "
        f"lag: {status['lag_seconds']:.0f} s"
    )
    print(
        f"in the bucket: {status['objects']} objects, {status['bytes'] / 1e6:.1f} MB; "
        f"deleted, kept for retention: {status['deleted_retained']}; verified: {status['verified_objects']}"
    )
    print(f"last verified restore: {when(status['last_verified_restore_at'])}")
    if status["warnings"]:
        print(f"warnings: {', '.join(status['warnings'])}")
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.backup.state import Busy
    from appliance.backup.verify import verify_backup

    state = _configured_state(settings)
    try:
        report = verify_backup(state, max(0.0, min(100.0, args.sample)), ProgressBar("verifying"))
    except Busy as exc:
        return fail(exc)
    for line in report.problems:
        print(line)
    print(
        f"manifest: {report.manifest or '-'}  checked: {report.checked} objects ({report.checked_bytes / 1e6:.1f} MB) "
        f"of {report.total}  problems: {len(report.problems)}"
    )
    return 0 if report.ok else 1


def cmd_restore(args: argparse.Namespace) -> int:
    from appliance.backup.crypto import WrongKey
    from appliance.backup.restore import RestoreFailed, restore_from_bucket
    from appliance.backup.setup import fetch_identity
    from appliance.backup.target import TargetError

    target = _target(args)
    try:
        if args.recovery_key_file:
            identity = fetch_identity(target, None, Path(args.recovery_key_file).read_text())
        else:
            identity = fetch_identity(target, _passphrase(args, confirm=False), None)
        report = restore_from_bucket(target, identity, Path(args.to).expanduser().resolve(), ProgressBar("restoring"))
    except (WrongKey, TargetError, RestoreFailed) as exc:
        return fail(f"restore: {exc}")
    for line in report.problems:
        print(line)
    print(
        f"manifest: {report.manifest}  restored: {report.restored} files ({report.restored_bytes / 1e6:.1f} MB)  "
        f"problems: {len(report.problems)}"
    )
    if report.ok:
        print(f"next: lightbox verify --data {args.to}; then lightbox serve --data {args.to}")
    return 0 if report.ok else 1
