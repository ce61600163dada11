"""The audit trail: who viewed, downloaded or changed what, from where, when.

Event types and codes follow DICOM PS3.15 A.5 (the audit message schema); the table keeps the
fields an admin reads, not the full XML message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from peewee import SqliteDatabase

from appliance.archive.index import AuditEvent
from appliance.archive.writelock import WriteLock

# PS3.15 A.5.3 event IDs used by Lightbox
USER_AUTHENTICATION = "UserAuthentication"  # login (action E), logout
INSTANCES_ACCESSED = "DICOMInstancesAccessed"  # a study page viewed (action R)
EXPORT = "Export"  # a ZIP or an image downloaded
SECURITY_ALERT = "SecurityAlert"  # users added, changed, removed; refused requests
APPLICATION_ACTIVITY = "ApplicationActivity"  # first-run setup

SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = 0, 4, 8  # EventOutcomeIndicator


@dataclass(frozen=True)
class Event:
    at: float
    event: str
    action: str
    outcome: int
    user_name: str
    address: str
    study_uid: str
    detail: str


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

    def recent(self, limit: int = 100, before: float | None = None) -> list[Event]:
        """The newest events first (older than ``before`` when given, for paging)."""
        query = AuditEvent.select().order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
        if before is not None:
            query = query.where(AuditEvent.at < before)
        return [
            Event(r.at, r.event, r.action, r.outcome, r.user_name, r.address, r.study_uid, r.detail) for r in query
        ]
