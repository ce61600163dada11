"""`backup init`: a new identity for this box, its passphrase-wrapped copy and a marker in
the bucket, and the recovery sheet (shown once, never stored in plaintext elsewhere)."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from typing import Any

import segno

from appliance.backup import crypto
from appliance.backup.bucket import open_bucket
from appliance.backup.state import BackupState
from appliance.backup.target import (
    IDENTITY,
    MARKER,
    Target,
    TargetError,
    explain,
    is_missing,
    with_retries,
)

# 2: identity.age is wrapped with an Argon2id-derived key (crypto.wrap_identity); 1: with age's
# scrypt passphrase recipient.  A restore reads both.
FORMAT_VERSION = 2
MIN_PASSPHRASE = 12
SHEET_CONFIRMED = "sheet_confirmed_at"  # state kv: "" while a sheet shown on the web waits for the admin's tick
LOSS_WARNING = (
    "Losing BOTH the passphrase and this recovery sheet loses the backup: it is encrypted on this box, "
    "and nobody - not the cloud provider, not the Lightbox developers - can decrypt it without one of them."
)


@dataclass(frozen=True)
class RecoverySheet:
    secret_key: str
    recipient: str
    target: Target
    created: float

    def qr(self) -> segno.QRCode:
        return segno.make(self.secret_key, error="m")

    def qr_data_uri(self) -> str:
        """The QR code as an SVG ``data:`` URI, for an <img> (the CSP allows data: images)."""
        return self.qr().svg_data_uri(scale=5, border=4)

    def text(self) -> str:
        qr = io.StringIO()
        self.qr().terminal(out=qr, compact=True)
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.created))
        return "\n".join(
            [
                "LIGHTBOX BACKUP RECOVERY SHEET - print it, keep it safe and away from the box.",
                f"Backup:     {self.target.describe()}",
                f"Created:    {when}",
                f"Public key: {self.recipient}",
                "",
                "Recovery key (restores the backup without the passphrase):",
                "",
                f"    {self.secret_key}",
                "",
                qr.getvalue().rstrip("\n"),
                "",
                "Restore on a new box: lightbox restore --from-bucket BUCKET --endpoint URL --prefix PREFIX "
                "--to DIR --recovery-key-file FILE (or --passphrase-file FILE); the bucket credentials are needed too.",
                "",
                "WARNING: " + LOSS_WARNING,
            ]
        )


def init_backup(state: BackupState, target: Target, passphrase: str) -> RecoverySheet:
    """Set this box up to back up to ``target``; raises TargetError if it cannot."""
    if state.configured:
        raise TargetError(f"backup is already set up (to {state.target().describe()}); its key cannot be replaced")
    if len(passphrase) < MIN_PASSPHRASE:
        raise TargetError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
    identity = crypto.generate_identity()
    recipient = str(identity.to_public())
    created = time.time()
    marker = {"format": "lightbox-backup", "version": FORMAT_VERSION, "recipient": recipient, "created": created}
    try:
        with open_bucket(target, state.checksums) as client:
            existing = _read_marker(client, target)
            if existing is not None:
                raise TargetError(
                    f"{target.describe()} already holds a Lightbox backup (key {existing.get('recipient', '?')}); "
                    "choose another prefix, or restore from it"
                )
            _put(client, target, IDENTITY, crypto.wrap_identity(identity, passphrase))
            _put(client, target, MARKER, json.dumps(marker).encode())
    except TargetError:
        raise
    except Exception as exc:
        raise TargetError(explain(exc, target)) from None
    state.save_setup(identity, target)
    return RecoverySheet(str(identity), recipient, target, created)


def await_sheet_confirmation(state: BackupState) -> None:
    """The sheet was shown on a page: until ``confirm_sheet``, the status warns that it may be lost."""
    state.put(SHEET_CONFIRMED, "")


def confirm_sheet(state: BackupState, at: float) -> None:
    state.put(SHEET_CONFIRMED, str(at))


def _put(client: Any, target: Target, name: str, data: bytes) -> None:
    with_retries(lambda: client.put_object(Bucket=target.bucket, Key=target.key(name), Body=data), "put")


def _read_marker(client: Any, target: Target) -> dict | None:
    try:
        body = with_retries(lambda: client.get_object(Bucket=target.bucket, Key=target.key(MARKER)), "get")["Body"]
    except Exception as exc:
        if is_missing(exc):
            return None
        raise
    return json.loads(body.read())


def fetch_identity(target: Target, passphrase: str | None, recovery_key: str | None) -> crypto.Identity:
    """The backup's identity for a restore: from the recovery key, or unwrapped with the
    passphrase; raises crypto.WrongKey if neither opens the backup."""
    with open_bucket(target, "when_required") as client:
        try:
            marker = _read_marker(client, target)
        except Exception as exc:
            raise TargetError(explain(exc, target)) from None
        if marker is None:
            raise TargetError(f"no Lightbox backup at {target.describe()} ({MARKER} not found)")
        if marker.get("version", 1) > FORMAT_VERSION:
            raise TargetError(f"the backup at {target.describe()} was made by a newer Lightbox: update this one first")
        if recovery_key is not None:
            identity = crypto.parse_identity(recovery_key)
        else:
            try:
                wrapped = with_retries(
                    lambda: client.get_object(Bucket=target.bucket, Key=target.key(IDENTITY))["Body"].read(), "get"
                )
            except Exception as exc:
                raise TargetError(f"cannot read {IDENTITY}: {explain(exc, target)}") from None
            identity = crypto.unwrap_identity(wrapped, passphrase or "")
    if str(identity.to_public()) != marker.get("recipient"):
        raise crypto.WrongKey("the recovery key is not this backup's key (its public key differs)")
    return identity
