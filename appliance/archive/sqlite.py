"""Everything SQLite-specific about the index, in one place: opening it (WAL, synchronous=FULL,
the pragmas), adding the columns a newer Lightbox knows, the bookkeeping commit that need not
wait for the disk, upserts of small state, a consistent copy (``VACUUM INTO``).

The rooms keep their own dialect-specific SQL beside them in the same way
(``reading/sqlite.py``: the FTS5 search and the C-FIND expressions).  A practice that outgrows
one box moves the index to PostgreSQL by a twin of these modules, not a rewrite of the rooms.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from peewee import Field, Model, OperationalError, SqliteDatabase, fn

from appliance.archive.index import MODELS, SCHEMA_VERSION, Meta, database
from appliance.archive.storage import is_out_of_space


def open_database(path: Path, models: Sequence[type[Model]] = MODELS, page_cache_kib: int = 8000) -> SqliteDatabase:
    """Open (creating if needed) the index at ``path`` and bind the models to it; ``models``
    are the tables to make (the facade adds the registry's to the index's own).  Each thread's
    connection caches up to ``page_cache_kib`` of pages."""
    make_private(path)
    db = SqliteDatabase(
        str(path),
        pragmas={  # busy_timeout first: the others may have to wait for another process
            "busy_timeout": 30000,
            "journal_mode": "wal",
            "synchronous": 2,  # FULL: a commit is on disk before we acknowledge
            "foreign_keys": 1,
            "cache_size": -page_cache_kib,
        },
        check_same_thread=False,
    )
    database.initialize(db)
    db.connect(reuse_if_open=True)
    with db.atomic("IMMEDIATE"):  # take the write lock up front: no read-to-write upgrade
        db.create_tables(models)
        _add_missing_columns(db, models)
        Meta.insert(key="schema_version", value=str(SCHEMA_VERSION)).on_conflict_ignore().execute()
    return db


def make_private(path: Path) -> None:
    """The database at ``path`` readable by its owner alone: it holds patient data and password
    hashes.  SQLite makes its -wal and -shm files with the database file's mode, so the file is
    made 0600 before SQLite opens it; an older install's files are tightened."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if name.stat().st_mode & 0o077:
                name.chmod(0o600)


def _add_missing_columns(db: SqliteDatabase, models: Sequence[type[Model]]) -> None:
    """Columns added to a model since the database was made get their default in old rows;
    `lightbox rebuild-index` fills in their real values.

    One ``ALTER TABLE ... ADD COLUMN ... DEFAULT`` each: peewee's migrator adds NOT NULL by
    copying the table and dropping the old one, which the foreign keys refuse for a table that
    others refer to (patient, study, series) as soon as it has rows."""
    for model in models:
        table = model._meta.table_name
        present = {c.name for c in db.get_columns(table)}
        for field in model._meta.sorted_fields:
            if field.column_name not in present:
                db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN {_column_definition(db, field)}')


def _column_definition(db: SqliteDatabase, field: Field) -> str:
    ctx = db.get_sql_context()
    definition, _ = ctx.sql(field.ddl(ctx)).query()
    if field.default is None or callable(field.default):
        if not field.null:
            raise RuntimeError(f"column {field.column_name}: a new NOT NULL column needs a constant default")
        return definition
    default = field.db_value(field.default)
    if isinstance(default, str):
        return f"{definition} DEFAULT '{default.replace(chr(39), chr(39) * 2)}'"
    return f"{definition} DEFAULT {int(default) if isinstance(default, bool) else default!r}"


@contextlib.contextmanager
def bookkeeping(db: SqliteDatabase) -> Iterator[None]:
    """Commit without waiting for the disk (this thread's connection, for one transaction).

    For records that are bookkeeping, not acknowledged images (a device's last association):
    losing the last ones to a power cut is harmless, while an fsync each (~2-5 ms) would slow
    units that open one association per image.  WAL with synchronous=NORMAL stays consistent,
    and the next FULL commit (an ingest) makes these frames durable too.
    """
    db.execute_sql("PRAGMA synchronous = NORMAL")
    try:
        yield
    finally:
        db.execute_sql("PRAGMA synchronous = FULL")


def disk_full(exc: BaseException) -> bool:
    """ENOSPC or SQLITE_FULL anywhere in the chain: the one write failure that storing must
    report as out of resources, and that reading and logging in must outlive.  When COMMIT
    fails with SQLITE_FULL, SQLite has already rolled back, so peewee's own ROLLBACK raises
    "cannot rollback - no transaction is active" and the disk-full error is further down."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if is_out_of_space(current):
            return True
        if isinstance(current, (sqlite3.OperationalError, OperationalError)) and "full" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


def put_meta(key: str, value: str) -> None:
    """Set one value of the small persistent state (caller holds the write lock)."""
    Meta.insert(key=key, value=value).on_conflict_replace().execute()


def snapshot(dest: str) -> None:
    """A consistent copy of the whole index in one new file (readers and writers go on)."""
    database.execute_sql("VACUUM INTO ?", (dest,))


def shrink_memory() -> None:
    """Free what the calling thread's connection caches (its page cache)."""
    database.execute_sql("PRAGMA shrink_memory")


def folder_of(column: Any) -> Any:
    """The top-level folder of a stored file's key ("ab" of "ab/abcd....dcm"), as SQL."""
    return fn.substr(column, 1, fn.instr(column, "/") - 1)


def has_table(name: str) -> bool:
    return database.execute_sql("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None
