"""The audit trail's hash chain: each event carries the SHA-256 of the previous event's hash
and of its own fields (its id included), so an edited, inserted or deleted row breaks the chain
at that row, and ``verify`` says where.

The chain starts from an anchor kept in ``Meta``: empty for a new trail, else the id and hash
of the last event removed by the retention (``prune``), which is also written to the log.
What the chain cannot show alone is the newest events cut off the end together: the head
(id and hash) printed by ``verify`` is checked against a copy kept elsewhere -- the syslog
collector receives every event with its hash, and every backup holds the index of its day.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from peewee import fn

from appliance.archive.index import Meta
from appliance.archive.registry.models import AuditEvent
from appliance.archive.sqlite import put_meta

LOG = logging.getLogger("lightbox.audit")
ANCHOR_KEY = "audit_chain_anchor"  # "ID HASH" of the last event pruned; absent: from the start
BATCH = 5000


def link(previous: str, row: AuditEvent) -> str:
    """The hash of ``row``, chained to ``previous`` (the hash of the event before it)."""
    fields = [row.id, repr(float(row.at)), row.event, row.action, int(row.outcome), row.user_name,
              row.address, row.study_uid, row.detail]  # fmt: skip
    canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{previous}\n{canonical}".encode()).hexdigest()


def anchor() -> tuple[int, str]:
    """(id, hash) the chain starts after: (0, "") for a trail never pruned."""
    row = Meta.get_or_none(Meta.key == ANCHOR_KEY)
    if row is None:
        return 0, ""
    event_id, _, chain = row.value.partition(" ")
    return int(event_id), chain


def head() -> tuple[int, str]:
    """(id, hash) of the newest chained event, or the anchor when there is none."""
    row = AuditEvent.select(AuditEvent.id, AuditEvent.chain).order_by(AuditEvent.id.desc()).first()
    return (row.id, row.chain) if row is not None else anchor()


def seal_unchained() -> int:
    """Chain the events recorded before the trail had a chain (an upgrade); caller holds the
    write lock.  Returns how many were sealed."""
    unchained = AuditEvent.select(fn.MIN(AuditEvent.id)).where(AuditEvent.chain == "").scalar()
    if unchained is None:
        return 0
    before = AuditEvent.select().where(AuditEvent.id < unchained).order_by(AuditEvent.id.desc()).first()
    previous = before.chain if before is not None else anchor()[1]
    sealed = 0
    for row in AuditEvent.select().where(AuditEvent.id >= unchained).order_by(AuditEvent.id):
        previous = link(previous, row)
        AuditEvent.update(chain=previous).where(AuditEvent.id == row.id).execute()
        sealed += 1
    LOG.info("audit_chain_sealed events=%d", sealed)
    return sealed


@dataclass(frozen=True)
class Verdict:
    events: int  # events checked
    first_id: int | None
    head_id: int
    head_hash: str
    broken_at: int | None = None  # the first event whose hash does not follow
    missing_before: bool = False  # ... and ids are missing just before it

    @property
    def intact(self) -> bool:
        return self.broken_at is None

    def explain(self) -> str:
        if self.intact:
            span = f"#{self.first_id} to #{self.head_id}" if self.first_id is not None else "none"
            return f"audit trail intact: {self.events} events ({span}); head #{self.head_id} {self.head_hash}"
        what = "events were deleted before it" if self.missing_before else "it, or one before it, was changed"
        return f"audit trail broken at event #{self.broken_at}: {what} (the {self.events} events before it hold)"


def _rows() -> Iterator[AuditEvent]:
    last = 0
    while batch := list(AuditEvent.select().where(AuditEvent.id > last).order_by(AuditEvent.id).limit(BATCH)):
        yield from batch
        last = batch[-1].id


def verify() -> Verdict:
    """Walk the chain from its anchor; the first row that does not follow breaks it."""
    expected_id, previous = anchor()
    checked, first = 0, None
    for row in _rows():
        first = row.id if first is None else first
        if link(previous, row) != row.chain:  # ids are consecutive and hashed: a gap breaks too
            return Verdict(checked, first, expected_id, previous, row.id, row.id != expected_id + 1)
        expected_id, previous, checked = row.id, row.chain, checked + 1
    return Verdict(checked, first, expected_id, previous)


def prune(older_than: float, up_to_id: int | None = None) -> int:
    """Remove the events recorded before ``older_than`` (retention), none after ``up_to_id``,
    keeping the chain checkable: the last removed event becomes the anchor.  Caller holds the
    write lock."""
    old = AuditEvent.at < older_than
    if up_to_id is not None:
        old &= AuditEvent.id <= up_to_id
    last = AuditEvent.select(AuditEvent.id, AuditEvent.chain).where(old).order_by(AuditEvent.id.desc()).first()
    if last is None:
        return 0
    removed = AuditEvent.delete().where(AuditEvent.id <= last.id).execute()
    put_meta(ANCHOR_KEY, f"{last.id} {last.chain}")
    LOG.info("audit_pruned events=%d anchor_id=%d anchor_hash=%s", removed, last.id, last.chain)
    return removed
