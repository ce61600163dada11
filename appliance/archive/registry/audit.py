"""The audit trail: who viewed, downloaded or changed what, from where, when.

Event types and codes follow DICOM PS3.15 A.5 (the audit message schema); the table keeps the
fields an admin reads, not the full XML message.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

from peewee import DatabaseError, SqliteDatabase

from appliance.archive.index import Meta
from appliance.archive.registry import auditchain
from appliance.archive.registry.models import AuditEvent
from appliance.archive.sqlite import bookkeeping, disk_full, put_meta
from appliance.archive.writelock import WriteLock

LOG = logging.getLogger("lightbox.audit")

# PS3.15 A.5.3 event IDs used by Lightbox
USER_AUTHENTICATION = "UserAuthentication"  # login (action E), logout
INSTANCES_ACCESSED = "DICOMInstancesAccessed"  # a study page viewed (R), images deleted (D)
INSTANCES_TRANSFERRED = "DICOMInstancesTransferred"  # a study received (C) or sent (R) over DICOM
QUERY = "Query"  # a C-FIND
EXPORT = "Export"  # a ZIP or an image downloaded
SECURITY_ALERT = "SecurityAlert"  # users added, changed, removed; refused requests and associations
APPLICATION_ACTIVITY = "ApplicationActivity"  # first-run setup
PATIENT_RECORD = "PatientRecord"  # a patient's demographics changed (action U)
# ... and how an admin reads them
EVENTS = {
    USER_AUTHENTICATION: "Login or logout",
    INSTANCES_ACCESSED: "Study viewed or deleted",
    INSTANCES_TRANSFERRED: "Images received or sent",
    QUERY: "Query",
    EXPORT: "Download",
    SECURITY_ALERT: "Security change or refusal",
    APPLICATION_ACTIVITY: "Application activity",
    PATIENT_RECORD: "Patient identity changed",
}
ACTIONS = {"C": "create", "R": "read", "U": "update", "D": "delete", "E": "execute"}  # EventActionCode

SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = 0, 4, 8  # EventOutcomeIndicator
EXPORTED_KEY = "audit_exported_id"  # in Meta: the syslog export's cursor
MAX_FIELD, MAX_DETAIL = 256, 2000  # a peer's values are bounded before they are kept
PAGE_MAX = 500


class AuditError(ValueError):
    """A query of the trail is malformed."""


@dataclass(frozen=True)
class Event:
    id: int
    at: float
    event: str
    action: str
    outcome: int
    user_name: str
    address: str
    study_uid: str
    detail: str


@dataclass(frozen=True)
class AuditQuery:
    """A page of the trail, newest first.  Pages are cut by event id (the order events were
    recorded in), not by time: the clock of a box without an RTC can jump."""

    event: str = ""  # one of EVENTS, or any
    user_name: str = ""
    failures_only: bool = False
    before: int | None = None  # the page holds the events recorded before this one ...
    after: int | None = None  # ... or after this one (paging back towards the newest)
    limit: int = 50

    def __post_init__(self) -> None:
        if self.event and self.event not in EVENTS:
            raise AuditError(f"event: one of {', '.join(EVENTS)}")
        if not 1 <= self.limit <= PAGE_MAX:
            raise AuditError(f"limit: 1-{PAGE_MAX}")
        if self.before is not None and self.after is not None:
            raise AuditError("before or after, not both")


@dataclass(frozen=True)
class AuditPage:
    events: list[Event]
    older: bool  # more events (matching the query) were recorded before the page's last
    newer: bool  # ... or after its first


def _event(r: AuditEvent) -> Event:
    return Event(r.id, r.at, r.event, r.action, r.outcome, r.user_name, r.address, r.study_uid, r.detail)


class AuditLog:
    def __init__(self, db: SqliteDatabase, write_lock: WriteLock) -> None:
        self.db = db
        self.write_lock = write_lock

    def record(
        self,
        event: str,
        user_name: str = "",
        address: str = "",
        *,
        action: str = "E",
        outcome: int = SUCCESS,
        study_uid: str = "",
        detail: str = "",
        durable: bool = True,
    ) -> None:
        """Add an event to the trail, chained to the one before.  ``durable=False`` for the
        DICOM side's frequent events (a query, a study received): committed without waiting for
        the disk, as the devices' bookkeeping is (see ``sqlite.bookkeeping``)."""
        try:
            speed = bookkeeping(self.db) if not durable else contextlib.nullcontext()
            with self.write_lock, speed, self.db.atomic("IMMEDIATE"):
                last_id, last_hash = auditchain.head()
                row = AuditEvent(
                    id=last_id + 1,
                    at=time.time(),
                    event=event,
                    action=action,
                    outcome=outcome,
                    user_name=user_name[:MAX_FIELD],
                    address=address[:MAX_FIELD],
                    study_uid=study_uid[:MAX_FIELD],
                    detail=detail[:MAX_DETAIL],
                )
                row.chain = auditchain.link(last_hash, row)
                row.save(force_insert=True)
        except DatabaseError as exc:
            if not disk_full(exc):
                raise
            # Logging in and reading go on with a full disk; the event goes to the journal.
            LOG.warning(
                "audit_event_not_written reason=disk_full event=%s action=%s outcome=%d user=%r address=%s",
                event, action, outcome, user_name, address,
            )  # fmt: skip

    def page(self, q: AuditQuery) -> AuditPage:
        """One page of the events matching ``q``, newest first, and whether others lie either side."""
        matching = AuditEvent.select()
        if q.event:
            matching = matching.where(AuditEvent.event == q.event)
        if q.user_name:
            matching = matching.where(AuditEvent.user_name == q.user_name)
        if q.failures_only:
            matching = matching.where(AuditEvent.outcome != SUCCESS)
        if q.after is not None:  # the oldest first from the cursor, then turned round
            rows = list(matching.where(AuditEvent.id > q.after).order_by(AuditEvent.id).limit(q.limit))[::-1]
        else:
            older = matching.where(AuditEvent.id < q.before) if q.before is not None else matching
            rows = list(older.order_by(AuditEvent.id.desc()).limit(q.limit))
        events = [_event(r) for r in rows]
        # Either side of the page, or of the cursor when the page is empty.
        last = events[-1].id if events else (q.after + 1 if q.after is not None else None)
        first = events[0].id if events else (q.before - 1 if q.before is not None else None)
        return AuditPage(
            events,
            older=last is not None and matching.where(AuditEvent.id < last).exists(),
            newer=first is not None and matching.where(AuditEvent.id > first).exists(),
        )

    def recorded_within(self, seconds: float, event: str, user_name: str, address: str) -> bool:
        """Whether such an event was recorded in the last ``seconds`` (by any process)."""
        return (
            AuditEvent.select()
            .where(
                (AuditEvent.at > time.time() - seconds) & (AuditEvent.event == event)
                & (AuditEvent.user_name == user_name) & (AuditEvent.address == address)
            )
            .exists()
        )  # fmt: skip

    def verify(self) -> auditchain.Verdict:
        """Whether the chain holds from its anchor to its head (``auditchain.verify``)."""
        return auditchain.verify()

    def prune(self, retention_days: float, now: float | None = None, up_to_id: int | None = None) -> int:
        """Remove the events older than ``retention_days`` (0: keep them all), and none after
        ``up_to_id`` (those not yet exported)."""
        if retention_days <= 0:
            return 0
        cutoff = (time.time() if now is None else now) - retention_days * 86400
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            return auditchain.prune(cutoff, up_to_id)

    def exported_up_to(self) -> int:
        """The id of the last event handed to the syslog collector (0: none)."""
        row = Meta.get_or_none(Meta.key == EXPORTED_KEY)
        return int(row.value) if row is not None else 0

    def mark_exported(self, event_id: int) -> None:
        with self.write_lock, bookkeeping(self.db), self.db.atomic("IMMEDIATE"):
            put_meta(EXPORTED_KEY, str(event_id))

    def since(self, after_id: int, limit: int) -> list[tuple[Event, str]]:
        """Events recorded after ``after_id``, oldest first, each with its chain hash (for export)."""
        rows = AuditEvent.select().where(AuditEvent.id > after_id).order_by(AuditEvent.id).limit(limit)
        return [(_event(r), r.chain) for r in rows]

    def recent(self, limit: int = 100) -> list[Event]:
        """The newest events first."""
        return self.page(AuditQuery(limit=limit)).events
