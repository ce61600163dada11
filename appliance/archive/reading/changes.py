"""Reading the change log for followers (backup, later forwarding): the changes after a
cursor, the cursor itself (kept in ``Meta`` so it survives restarts), and what a follower
needs to know about the instances those changes name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from appliance.archive.index import Change, Instance, Meta, Series, Study, database
from appliance.archive.reading.rows import FILE_COLUMNS, InstanceFile
from appliance.archive.sqlite import put_meta

STORED_KINDS = ("instance_stored",)
# instance_superseded: an identity edit gave the instance a new file (and an instance_stored
# follows); the original stays on disk until a backup run has taken it.
SUPERSEDED_KIND = "instance_superseded"
REMOVED_KINDS = ("instance_deleted", "instance_replaced", "instance_missing", SUPERSEDED_KIND)
REBUILT_KIND = "index_rebuilt"  # every row was dropped and indexed again from the files


@dataclass(frozen=True)
class ChangeRow:
    seq: int
    kind: str
    sop_uid: str
    at: float


def changes_after(seq: int, limit: int) -> list[ChangeRow]:
    rows = (
        Change.select(Change.seq, Change.kind, Change.sop_uid, Change.at)
        .where(Change.seq > seq)
        .order_by(Change.seq)
        .limit(limit)
        .tuples()
    )
    return [ChangeRow(*row) for row in rows]


def first_study_from(calling_ae: str, after: int) -> str | None:
    """The study of the first instance after change ``after`` that ``calling_ae`` sent and that
    is still stored (the Connect page's "first study")."""
    row = (
        Change.select(Change.study_uid)
        .join(Instance, on=(Instance.sop_uid == Change.sop_uid))
        .where((Change.seq > after) & Change.kind.in_(STORED_KINDS) & (Instance.calling_ae == calling_ae))
        .order_by(Change.seq)
        .tuples()
        .first()
    )
    return row[0] if row else None


def cursor(name: str) -> int:
    row = Meta.get_or_none(Meta.key == f"cursor:{name}")
    return int(row.value) if row else 0


def set_cursor(name: str, seq: int) -> None:
    """Caller holds the write lock and a transaction."""
    put_meta(f"cursor:{name}", str(seq))


def stored_instance(sop_uid: str) -> InstanceFile | None:
    row = Instance.select(*FILE_COLUMNS).where(Instance.sop_uid == sop_uid).tuples().first()
    return InstanceFile(*row) if row else None


def stored_instances(study_uid: str | None = None, sop_class_prefix: str = "") -> Iterator[InstanceFile]:
    """Every indexed instance (or a study's; or those whose SOP Class UID begins so), streamed."""
    query = Instance.select(*FILE_COLUMNS)
    if study_uid is not None:
        query = query.join(Series).join(Study).where(Study.study_uid == study_uid)
    if sop_class_prefix:
        query = query.where(Instance.sop_class_uid.startswith(sop_class_prefix))
    for row in query.tuples().iterator():
        yield InstanceFile(*row)


def pending_after(seq: int) -> tuple[int, int, float | None]:
    """(instances, bytes, time of the oldest change) stored after ``seq`` and still indexed."""
    count, size, oldest = database.execute_sql(
        "SELECT COUNT(*), COALESCE(SUM(i.size), 0), MIN(c.at) FROM change c JOIN instance i ON i.sop_uid = c.sop_uid"
        " WHERE c.seq > ? AND c.kind = 'instance_stored'",
        (seq,),
    ).fetchone()
    return count, size, oldest
