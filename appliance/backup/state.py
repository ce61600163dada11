"""What the box knows about its backup, in ``<data>/backup/``: the identity and target (both
mode 0600), and a small SQLite file of uploaded objects and past runs.

The change-log cursor itself lives in the index (``Archive.cursor("backup")``) and is moved
only after the objects of the changes before it are recorded here, so a crash between the
two makes a run repeat work (found uploaded, skipped), never skip it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.archive import make_private
from appliance.backup import crypto, target
from appliance.backup.bucket import open_bucket
from appliance.backup.target import Target
from appliance.files import write_private

CURSOR = "backup"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS object (
    name TEXT PRIMARY KEY,      -- object name under objects/ (an HMAC)
    sop_uid TEXT NOT NULL,
    file_key TEXT NOT NULL,
    size INTEGER NOT NULL,      -- plaintext bytes
    sha256 TEXT NOT NULL,       -- of the plaintext
    stored_size INTEGER NOT NULL,
    uploaded_at REAL NOT NULL,
    deleted_at REAL,            -- the instance left the archive; purged after the retention
    verified_at REAL            -- last downloaded, decrypted and found equal to its hash
);
CREATE INDEX IF NOT EXISTS object_sop ON object (sop_uid);
CREATE INDEX IF NOT EXISTS object_deleted ON object (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,         -- backup | verify
    started REAL NOT NULL,
    finished REAL,
    ok INTEGER,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Busy(Exception):
    """Another backup run or verification holds the lock."""


@dataclass(frozen=True)
class ObjectRow:
    name: str
    sop_uid: str
    file_key: str
    size: int
    sha256: str
    stored_size: int
    uploaded_at: float
    deleted_at: float | None
    verified_at: float | None

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sop_uid": self.sop_uid,
            "file_key": self.file_key,
            "size": self.size,
            "sha256": self.sha256,
            "deleted_at": self.deleted_at,
        }


class BackupState:
    def __init__(self, data_dir: Path, checksums: str = "when_required") -> None:
        self.checksums = checksums  # the backup_checksums setting
        self.folder = data_dir / "backup"
        self.identity_path = self.folder / "identity.txt"
        self.target_path = self.folder / "target.json"
        self.temp = self.folder / "tmp"
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> BackupState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def configured(self) -> bool:
        return self.identity_path.exists() and self.target_path.exists()

    def identity(self) -> crypto.Identity:
        return crypto.parse_identity(self.identity_path.read_text())

    def target(self) -> target.Target:
        return target.load(self.target_path)

    def bucket(self, stopping: threading.Event | None = None) -> contextlib.AbstractContextManager[Any]:
        """The bucket's client, in a child process while the ``with`` lasts (see bucket.py)."""
        return open_bucket(self.target(), self.checksums, stopping)

    def save_setup(self, identity: crypto.Identity, where: Target) -> None:
        write_private(self.identity_path, (str(identity) + "\n").encode())
        target.save(where, self.target_path)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            make_private(self.folder / "state.sqlite")
            self._db = sqlite3.connect(self.folder / "state.sqlite", isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        return self._db

    def lock(self) -> _RunLock:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return _RunLock(self.folder / "run.lock")

    def temp_file(self, name: str) -> Path:
        self.temp.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.temp / name
        path.unlink(missing_ok=True)
        return path

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction (one fsync) for many writes; what was written is kept even if the
        block fails: each row records an upload that did happen."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    # objects
    def has_object(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM object WHERE name = ?", (name,)).fetchone() is not None

    def add_object(self, row: ObjectRow) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO object VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row.name, row.sop_uid, row.file_key, row.size, row.sha256, row.stored_size, row.uploaded_at, None, None),
        )

    def mark_deleted(self, sop_uid: str, keep_sha256: str | None, at: float) -> int:
        """Record that ``sop_uid``'s objects left the archive, except the current copy."""
        return self.db.execute(
            "UPDATE object SET deleted_at = ? WHERE sop_uid = ? AND deleted_at IS NULL AND sha256 IS NOT ?",
            (at, sop_uid, keep_sha256),
        ).rowcount

    def revive(self, name: str) -> None:
        self.db.execute("UPDATE object SET deleted_at = NULL WHERE name = ?", (name,))

    def objects(self, live_only: bool = False) -> Iterator[ObjectRow]:
        where = " WHERE deleted_at IS NULL" if live_only else ""
        for row in self.db.execute(f"SELECT * FROM object{where} ORDER BY name"):
            yield ObjectRow(*row)

    def objects_of(self, sop_uid: str) -> list[ObjectRow]:
        return [ObjectRow(*r) for r in self.db.execute("SELECT * FROM object WHERE sop_uid = ?", (sop_uid,))]

    def expired(self, before: float) -> list[str]:
        return [n for (n,) in self.db.execute("SELECT name FROM object WHERE deleted_at < ?", (before,))]

    def forget(self, name: str) -> None:
        self.db.execute("DELETE FROM object WHERE name = ?", (name,))

    def mark_verified(self, names: list[str], at: float) -> None:
        with self.db:  # one transaction
            self.db.execute("BEGIN")
            self.db.executemany("UPDATE object SET verified_at = ? WHERE name = ?", [(at, n) for n in names])

    def totals(self) -> dict[str, int]:
        live, size, deleted, verified = self.db.execute(
            "SELECT COALESCE(SUM(deleted_at IS NULL), 0), COALESCE(SUM(CASE WHEN deleted_at IS NULL THEN stored_size END), 0),"
            " COALESCE(SUM(deleted_at IS NOT NULL), 0), COALESCE(SUM(verified_at IS NOT NULL AND deleted_at IS NULL), 0)"
            " FROM object"
        ).fetchone()
        return {"objects": live, "bytes": size, "deleted_retained": deleted, "verified_objects": verified}

    # runs
    def begin_run(self, kind: str) -> int:
        run_id = self.db.execute("INSERT INTO run (kind, started) VALUES (?, ?)", (kind, time.time())).lastrowid
        if run_id is None:
            raise sqlite3.DatabaseError("no id for the new run")
        return run_id

    def finish_run(self, run_id: int, ok: bool, detail: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE run SET finished = ?, ok = ?, detail = ? WHERE id = ?",
            (time.time(), int(ok), json.dumps(detail), run_id),
        )

    def last_run(self, kind: str, ok: bool | None = None) -> dict[str, Any] | None:
        condition = "" if ok is None else f" AND ok = {int(ok)}"
        row = self.db.execute(
            f"SELECT id, started, finished, ok, detail FROM run WHERE kind = ? AND finished IS NOT NULL{condition}"
            " ORDER BY id DESC LIMIT 1",
            (kind,),
        ).fetchone()
        if row is None:
            return None
        run_id, started, finished, ok_value, detail = row
        return {"id": run_id, "started": started, "finished": finished, "ok": bool(ok_value), **json.loads(detail)}

    # small values
    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def put(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class _RunLock:
    """One backup run or verification at a time per box (the service loop and the CLI)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _RunLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise Busy("another backup run or verification is in progress") from None
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
