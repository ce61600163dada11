"""Accounts of the web UI and HTTP API: users with roles, Argon2id passwords, sessions.

A session is a random token in an HttpOnly cookie; the index keeps only the token's SHA-256.
Sessions expire after ``idle`` seconds without a request and ``absolute`` seconds after login;
changing a user's password or removing the user ends their sessions.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from peewee import DatabaseError, SqliteDatabase

from appliance.archive.registry.models import Session, User
from appliance.archive.sqlite import disk_full
from appliance.archive.writelock import WriteLock

ROLES = ("admin", "viewer")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # hashing cost grows with length; bound what a stranger can make us hash
LAST_SEEN_STEP = 60.0  # seconds: refresh a session's last-seen time at most this often (a write each)
MAX_UNWRITTEN_SESSIONS = 64  # sessions made while the disk was full, kept in memory
LOG = logging.getLogger("lightbox.users")

# Argon2id at OWASP's first recommended setting (19 MiB, t=2, p=1; ~35 ms on the project machine)
# rather than argon2-cffi's default (RFC 9106's 64 MiB, t=3, p=4): the web server has 8 threads
# and the service's whole budget on a 1 GB box is 200 MB.  Hashes made with other parameters
# still verify (they carry theirs) and are made again at the next login (``authenticate``).
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# One hash (a verification or a new password) at a time: a burst of logins, or an attack spread
# over many addresses, takes 19 MiB (64 MiB for an old hash) and waits in line, ~35 ms a login
# here.  Two at once cost the service's peak under load another 19 MiB of its 200 MB.
_HASHING = threading.BoundedSemaphore(1)


def _hash(password: str) -> str:
    with _HASHING:
        return _HASHER.hash(password)


def hash_secret(secret: str) -> str:
    """An Argon2id hash of a secret other than a password (a share link's PIN)."""
    return _hash(secret)


def verify_secret(stored: str, secret: str) -> bool:
    """Whether ``secret`` matches ``stored`` (``hash_secret``'s), at a password's cost."""
    try:
        with _HASHING:
            return bool(_HASHER.verify(stored, secret[:MAX_PASSWORD]))
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user name is unknown, so that a wrong name costs as much as a
    wrong password.  Made once, by the process that checks passwords (``prepare_logins``), not
    at import: every CLI command and DICOM worker would pay for it."""
    return _hash(secrets.token_hex(16))


def prepare_logins() -> None:
    """Make the unknown-user hash before the first login, so the first one is timed like the rest."""
    _dummy_hash()


class UserError(ValueError):
    """A user name, role or password is not acceptable."""


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: str
    created_at: float
    password_hash: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class ActiveSession:
    account: Account
    csrf_token: str
    created_at: float


@dataclass
class _UnwrittenSession:
    user_id: int
    csrf_token: str
    created_at: float
    last_seen_at: float


def check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 64 or any(ord(c) < 33 or c in ":\\/\"'<>&" for c in name):
        raise UserError("user name: 1-64 characters, no spaces, quotes, colons, slashes or <>&")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"password: at most {MAX_PASSWORD} characters")
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"role: one of {', '.join(ROLES)}")
    return role


def _account(row: User) -> Account:
    return Account(row.id, row.name, row.role, row.created_at, row.password_hash)


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserTable:
    def __init__(self, db: SqliteDatabase, write_lock: WriteLock) -> None:
        self.db = db
        self.write_lock = write_lock

    def count(self) -> int:
        return User.select().count()

    def all(self) -> list[Account]:
        return [_account(row) for row in User.select().order_by(User.name)]

    def get(self, name: str) -> Account | None:
        row = User.get_or_none(User.name == name)
        return _account(row) if row is not None else None

    def add(self, name: str, password: str, role: str) -> Account:
        name, role = check_name(name), check_role(role)
        digest = _hash(check_password(password))
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            if User.select().where(User.name == name).exists():
                raise UserError(f"user {name!r} exists already")
            User.create(name=name, password_hash=digest, role=role, created_at=time.time())
        return self.get(name)  # type: ignore[return-value]

    def add_first_admin(self, name: str, password: str) -> Account:
        """The first-run account: refused once any user exists (setup is then closed)."""
        name = check_name(name)
        digest = _hash(check_password(password))
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            if User.select().exists():
                raise UserError("setup is closed: a user exists already")
            User.create(name=name, password_hash=digest, role="admin", created_at=time.time())
        return self.get(name)  # type: ignore[return-value]

    def set_password(self, name: str, password: str) -> bool:
        """Change the password and end every session of the user."""
        digest = _hash(check_password(password))
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            row = User.get_or_none(User.name == name)
            if row is None:
                return False
            User.update(password_hash=digest).where(User.id == row.id).execute()
            Session.delete().where(Session.user == row.id).execute()
        return True

    def remove(self, name: str) -> bool:
        """Remove a user (and their sessions); the last admin cannot be removed."""
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            row = User.get_or_none(User.name == name)
            if row is None:
                return False
            if row.role == "admin" and User.select().where(User.role == "admin").count() == 1:
                raise UserError("the last admin cannot be removed")
            Session.delete().where(Session.user == row.id).execute()
            row.delete_instance()
        return True

    def authenticate(self, name: str, password: str) -> Account | None:
        """The account if the password is right; the same work is done for an unknown name."""
        row = User.get_or_none(User.name == name.strip()) if len(password) <= MAX_PASSWORD else None
        stored = row.password_hash if row is not None else _dummy_hash()
        try:
            with _HASHING:
                _HASHER.verify(stored, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if _HASHER.check_needs_rehash(stored):  # made with other parameters: made again with ours
            digest = _hash(password)
            try:
                with self.write_lock, self.db.atomic("IMMEDIATE"):
                    User.update(password_hash=digest).where(
                        (User.id == row.id) & (User.password_hash == stored)
                    ).execute()
            except DatabaseError as exc:
                if not disk_full(exc):
                    raise  # a full disk: the new hash waits for the next login
            row = User.get_by_id(row.id)
        return _account(row)


class SessionStore:
    """Web sessions, in the index (so that a restart keeps them).  On a full disk a new session
    is kept in this process's memory instead: logging in must outlive a full disk."""

    def __init__(self, db: SqliteDatabase, write_lock: WriteLock, idle: float, absolute: float) -> None:
        self.db = db
        self.write_lock = write_lock
        self.idle = idle
        self.absolute = absolute
        self._unwritten: dict[str, _UnwrittenSession] = {}  # token digest -> session
        self._unwritten_lock = threading.Lock()

    def create(self, account: Account, address: str) -> str:
        """A new session for ``account``; returns the token for the cookie."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        csrf_token = secrets.token_urlsafe(32)
        try:
            with self.write_lock, self.db.atomic("IMMEDIATE"):
                Session.delete().where(self._expired(now)).execute()
                Session.create(
                    token_sha256=_token_digest(token),
                    user=account.id,
                    csrf_token=csrf_token,
                    created_at=now,
                    last_seen_at=now,
                    address=address,
                )
        except DatabaseError as exc:
            if not disk_full(exc):
                raise
            LOG.warning("session_kept_in_memory reason=disk_full user=%r address=%s", account.name, address)
            with self._unwritten_lock:
                if len(self._unwritten) >= MAX_UNWRITTEN_SESSIONS:
                    self._unwritten.pop(min(self._unwritten, key=lambda k: self._unwritten[k].last_seen_at))
                self._unwritten[_token_digest(token)] = _UnwrittenSession(account.id, csrf_token, now, now)
        return token

    def _unwritten_session(self, digest: str, now: float) -> ActiveSession | None:
        with self._unwritten_lock:
            kept = self._unwritten.get(digest)
            if kept is None:
                return None
            user = User.get_or_none(User.id == kept.user_id)
            if user is None or kept.last_seen_at < now - self.idle or kept.created_at < now - self.absolute:
                del self._unwritten[digest]
                return None
            kept.last_seen_at = now
            return ActiveSession(_account(user), kept.csrf_token, kept.created_at)

    def _expired(self, now: float):
        return (Session.last_seen_at < now - self.idle) | (Session.created_at < now - self.absolute)

    def get(self, token: str, now: float | None = None) -> ActiveSession | None:
        """The live session of ``token`` (refreshing its idle clock), or None."""
        now = time.time() if now is None else now
        digest = _token_digest(token)
        row = Session.select(Session, User).join(User).where(Session.token_sha256 == digest).first()
        if row is None:
            return self._unwritten_session(digest, now)
        if row.last_seen_at < now - self.idle or row.created_at < now - self.absolute:
            self.end(token)
            return None
        if now - row.last_seen_at > min(LAST_SEEN_STEP, self.idle / 4):
            try:
                with self.write_lock, self.db.atomic("IMMEDIATE"):
                    Session.update(last_seen_at=now).where(Session.id == row.id).execute()
            except DatabaseError as exc:
                if not disk_full(exc):
                    raise  # a full disk: the idle clock is refreshed at the next step
        return ActiveSession(_account(row.user), row.csrf_token, row.created_at)

    def end_all_but(self, token: str) -> None:
        """End every session but ``token``'s (when their cookies may have crossed the network
        in clear: HTTPS only was turned on)."""
        digest = _token_digest(token)
        with self._unwritten_lock:
            self._unwritten = {k: v for k, v in self._unwritten.items() if k == digest}
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            Session.delete().where(Session.token_sha256 != digest).execute()

    def end(self, token: str) -> None:
        digest = _token_digest(token)
        with self._unwritten_lock:
            self._unwritten.pop(digest, None)
        try:
            with self.write_lock, self.db.atomic("IMMEDIATE"):
                Session.delete().where(Session.token_sha256 == digest).execute()
        except DatabaseError as exc:
            if not disk_full(exc):
                raise
            LOG.warning("session_end_not_written reason=disk_full")
