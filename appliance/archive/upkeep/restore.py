"""Bringing an archive back from a copy: an index snapshot put in place of the index, and
the stored files, each checked against its row before it is moved into storage.

The only code besides ingest that puts files into storage: restored files are the bytes the
index already describes (same key, same hash), so nothing is parsed or re-indexed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from appliance.archive.index import Instance
from appliance.archive.storage import Storage, fsync_dir


class RestoreError(Exception):
    """The restore cannot go on (target not empty, file does not match its row)."""


def snapshot_change_seq(snapshot: Path) -> int:
    """The newest change an index snapshot holds."""
    db = sqlite3.connect(f"file:{snapshot}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COALESCE(MAX(seq), 0) FROM change").fetchone()[0]
    finally:
        db.close()


def install_index(data_dir: Path, snapshot: Path) -> None:
    """Make ``snapshot`` the index of the (new, empty) data folder ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if (data_dir / "index.sqlite").exists() or any((data_dir / "storage").glob("*/*")):
        raise RestoreError(f"{data_dir} already holds an archive; restore into an empty folder")
    target = data_dir / "index.sqlite"
    shutil.move(snapshot, target)
    with open(target, "rb") as f:
        os.fsync(f.fileno())
    fsync_dir(data_dir)


def adopt_file(storage: Storage, spooled: Path, file_key: str, sha256: str, size: int) -> None:
    """Move a restored file (written to the spool and hashed while written) into storage,
    with its original reception time: rebuild-index replays files in that order."""
    row = Instance.get_or_none(Instance.file_key == file_key)
    if row is None or row.sha256 != sha256 or row.size != size:
        raise RestoreError(f"restored file {file_key} does not match the index")
    stored = storage.adopt(spooled, sha256, size, received_ns=round(row.received_at * 1e9))
    if stored.key != file_key:
        raise RestoreError(f"restored file {file_key} would be stored as {stored.key}")
