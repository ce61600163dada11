"""The audit trail: who viewed, downloaded or changed what, from where, when.

Event types and codes follow DICOM PS3.15 A.5 (the audit message schema); the table keeps the
fields an admin reads, not the full XML message.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from peewee import DatabaseError, SqliteDatabase

from appliance.archive.registry.models import AuditEvent
from appliance.archive.sqlite import disk_full
from appliance.archive.writelock import WriteLock

LOG = logging.getLogger("lightbox.audit")

# PS3.15 A.5.3 event IDs used by Lightbox
USER_AUTHENTICATION = "UserAuthentication"  # login (action E), logout
INSTANCES_ACCESSED = "DICOMInstancesAccessed"  # a study page viewed (action R)
EXPORT = "Export"  # a ZIP or an image downloaded
SECURITY_ALERT = "SecurityAlert"  # users added, changed, removed; refused requests
APPLICATION_ACTIVITY = "ApplicationActivity"  # first-run setup
# ... and how an admin reads them
EVENTS = {
    USER_AUTHENTICATION: "Login or logout",
    INSTANCES_ACCESSED: "Study viewed",
    EXPORT: "Download",
    SECURITY_ALERT: "Security change",
    APPLICATION_ACTIVITY: "Application activity",
}
ACTIONS = {"C": "create", "R": "read", "U": "update", "D": "delete", "E": "execute"}  # EventActionCode

SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = 0, 4, 8  # EventOutcomeIndicator
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
    ) -> None:
        try:
            with self.write_lock, self.db.atomic("IMMEDIATE"):
                AuditEvent.create(
                    at=time.time(),
                    event=event,
                    action=action,
                    outcome=outcome,
                    user_name=user_name,
                    address=address,
                    study_uid=study_uid,
                    detail=detail,
                )
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

    def recent(self, limit: int = 100) -> list[Event]:
        """The newest events first."""
        return self.page(AuditQuery(limit=limit)).events
