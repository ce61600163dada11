"""Share links: one study, read-only, for someone without an account (a colleague elsewhere).

A link is a random token (256 bits) of which the index keeps only the SHA-256, as it does for
sessions; it expires, can be revoked, and can need a PIN given separately (kept as an Argon2id
hash, like passwords).  ``MAX_PIN_FAILURES`` wrong PINs in a row lock the link for good: its
maker makes a new one.  The web layer adds a per-address wait on top (``web/shares.py``).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from peewee import SqliteDatabase

from appliance.archive.registry.models import Share
from appliance.archive.registry.users import MAX_PASSWORD, hash_secret, verify_secret
from appliance.archive.writelock import WriteLock

MAX_PIN_FAILURES = 10
MIN_PIN, MAX_PIN = 4, 64
MAX_LINKS_PER_STUDY = 200  # bounds a study page's list and the table


class ShareError(ValueError):
    """A share link cannot be made as asked."""


@dataclass(frozen=True)
class ShareLink:
    id: int
    study_uid: str
    created_by: str
    created_at: float
    expires_at: float
    needs_pin: bool
    deidentify: bool
    secret: str
    revoked_at: float | None
    revoked_by: str
    uses: int
    pin_failures: int

    def state(self, now: float | None = None) -> str:
        """active, revoked, locked (too many wrong PINs) or expired."""
        if self.revoked_at is not None:
            return "revoked"
        if self.pin_failures >= MAX_PIN_FAILURES:
            return "locked"
        if (time.time() if now is None else now) >= self.expires_at:
            return "expired"
        return "active"

    def as_json(self) -> dict[str, object]:
        """What the study page lists (never the secret, nor the PIN's hash)."""
        return {
            "id": self.id, "created_by": self.created_by, "created_at": self.created_at,
            "expires_at": self.expires_at, "needs_pin": self.needs_pin, "deidentify": self.deidentify,
            "revoked_at": self.revoked_at, "revoked_by": self.revoked_by, "uses": self.uses, "state": self.state(),
        }  # fmt: skip


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _link(row: Share) -> ShareLink:
    return ShareLink(
        row.id, row.study_uid, row.created_by, row.created_at, row.expires_at, bool(row.pin_hash),
        row.deidentify, row.secret, row.revoked_at, row.revoked_by, row.uses, row.pin_failures,
    )  # fmt: skip


class ShareStore:
    def __init__(self, db: SqliteDatabase, write_lock: WriteLock) -> None:
        self.db = db
        self.write_lock = write_lock

    def create(
        self, study_uid: str, created_by: str, seconds: float, pin: str = "", deidentify: bool = False
    ) -> tuple[str, ShareLink]:
        """A new link; returns its token (shown once: only its digest is kept) and the link."""
        if pin and not (MIN_PIN <= len(pin) <= min(MAX_PIN, MAX_PASSWORD)):
            raise ShareError(f"PIN: {MIN_PIN} to {MAX_PIN} characters, or none")
        if seconds <= 0:
            raise ShareError("the link must be valid for some time")
        if Share.select().where(Share.study_uid == study_uid).count() >= MAX_LINKS_PER_STUDY:
            raise ShareError(f"this study has {MAX_LINKS_PER_STUDY} links already")
        token = secrets.token_urlsafe(32)
        pin_hash = hash_secret(pin) if pin else ""  # hashed before the write lock is taken
        now = time.time()
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            row = Share.create(
                token_sha256=_digest(token), study_uid=study_uid, created_by=created_by, created_at=now,
                expires_at=now + seconds, pin_hash=pin_hash, deidentify=deidentify,
                secret=secrets.token_hex(16) if deidentify else "",
            )  # fmt: skip
        return token, _link(row)

    def by_token(self, token: str) -> ShareLink | None:
        if not 20 <= len(token) <= 100:
            return None
        row = Share.get_or_none(Share.token_sha256 == _digest(token))
        return _link(row) if row is not None else None

    def get(self, share_id: int) -> ShareLink | None:
        row = Share.get_or_none(Share.id == share_id)
        return _link(row) if row is not None else None

    def for_study(self, study_uid: str) -> list[ShareLink]:
        rows = Share.select().where(Share.study_uid == study_uid).order_by(Share.created_at.desc())
        return [_link(row) for row in rows]

    def revoke(self, share_id: int, by: str) -> ShareLink | None:
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            Share.update(revoked_at=time.time(), revoked_by=by).where(
                (Share.id == share_id) & Share.revoked_at.is_null()
            ).execute()
        return self.get(share_id)

    def count_use(self, share_id: int) -> None:
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            Share.update(uses=Share.uses + 1).where(Share.id == share_id).execute()

    def check_pin(self, share_id: int, pin: str) -> bool:
        """Whether ``pin`` is the link's; a wrong one counts towards the lock, a right one resets it."""
        row = Share.get_or_none(Share.id == share_id)
        if row is None or not row.pin_hash or row.pin_failures >= MAX_PIN_FAILURES:
            return False
        right = verify_secret(row.pin_hash, pin)
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            failures = 0 if right else Share.pin_failures + 1
            Share.update(pin_failures=failures).where(Share.id == share_id).execute()
        return right
