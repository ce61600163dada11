"""Forwarding rules and their persistent queue.

A rule sends every study that becomes stable (or those with a modality, or sent by a calling
AE) to a destination node.  The change log drives it: a cursor in ``Meta`` follows the
'study_stable' changes, and each match becomes a job in ``ForwardJob`` in the same
transaction that moves the cursor, so no study is queued twice or missed across restarts.
A job that fails waits ``retry_initial`` seconds, then twice as long after each further
failure (up to ``RETRY_MAX``), until it is delivered or its rule is removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from peewee import SqliteDatabase, fn

from appliance.archive.index import Change, Meta, database
from appliance.archive.reading import retrieval
from appliance.archive.reading.rows import InstanceFile
from appliance.archive.registry.models import ForwardJob, ForwardRule
from appliance.archive.registry.nodes import DicomNode, NodeTable, check_aet
from appliance.archive.writelock import WriteLock

LOG = logging.getLogger("lightbox.forward")

CURSOR = "forward_cursor"
RETRY_MAX = 3600.0
BATCH = 500
ERROR_LENGTH = 300


class ForwardError(ValueError):
    """A rule's values are invalid."""


@dataclass(frozen=True)
class Rule:
    id: int
    destination: str
    modality: str
    calling_ae: str


@dataclass(frozen=True)
class Job:
    id: int
    rule_id: int
    destination: str
    study_uid: str
    state: str  # pending, done
    attempts: int
    next_attempt_at: float
    last_error: str
    created_at: float
    done_at: float | None
    sent: int


@dataclass
class SendResult:
    """What became of sending stored instances to a peer, one C-STORE each (forwarding here;
    C-MOVE and C-GET in the DICOM door, which count with the same type): completed, completed
    with a warning (the peer stored it, perhaps with elements coerced), failed (their SOP
    Instance UIDs listed), or not tried (remaining, after a cancel); ``error`` says why the last
    failure happened."""

    completed: int = 0
    warning: int = 0
    failed: int = 0
    remaining: int = 0
    failed_uids: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def sent(self) -> int:
        """The instances the peer now has."""
        return self.completed + self.warning

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.remaining == 0 and not self.error


Send = Callable[[DicomNode, list[InstanceFile]], SendResult]


def _rule(row: ForwardRule) -> Rule:
    return Rule(row.id, row.destination, row.modality, row.calling_ae)


def _job(row: ForwardJob) -> Job:
    return Job(
        row.id, row.rule_id, row.destination, row.study_uid, row.state, row.attempts, row.next_attempt_at,
        row.last_error, row.created_at, row.done_at, row.sent,
    )  # fmt: skip


def _matches(rule: ForwardRule, study_uid: str) -> bool:
    if rule.modality:
        row = database.execute_sql("SELECT modalities FROM study WHERE study_uid = ?", (study_uid,)).fetchone()
        if row is None or rule.modality not in row[0].split("\\"):
            return False
    if rule.calling_ae:
        row = database.execute_sql(
            "SELECT 1 FROM instance i JOIN series s ON i.series_id = s.id JOIN study st ON s.study_id = st.id"
            " WHERE st.study_uid = ? AND i.calling_ae = ? LIMIT 1",
            (study_uid, rule.calling_ae),
        ).fetchone()
        if row is None:
            return False
    return True


class Forwarding:
    def __init__(
        self, db: SqliteDatabase, write_lock: WriteLock, nodes: NodeTable, retry_initial: float = 30.0
    ) -> None:
        self.db = db
        self.write_lock = write_lock
        self.nodes = nodes
        self.retry_initial = retry_initial

    def add_rule(self, destination: str, modality: str = "", calling_ae: str = "") -> Rule:
        destination = check_aet(destination)
        node = self.nodes.get(destination)
        if node is None or not node.allows("store"):
            raise ForwardError(
                f"{destination} is not a node Lightbox may send to: add it as a node allowed to receive"
                " studies (store), on the Devices page or with `lightbox node add`"
            )
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            row = ForwardRule.create(
                destination=destination,
                modality=modality.strip().upper(),
                calling_ae=check_aet(calling_ae) if calling_ae.strip() else "",
                created_at=time.time(),
            )
        return _rule(row)

    def rules(self) -> list[Rule]:
        return [_rule(row) for row in ForwardRule.select().order_by(ForwardRule.id)]

    def remove_rule(self, rule_id: int) -> bool:
        """Remove a rule and the jobs it still had waiting."""
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            ForwardJob.delete().where((ForwardJob.rule_id == rule_id) & (ForwardJob.state == "pending")).execute()
            return ForwardRule.delete().where(ForwardRule.id == rule_id).execute() > 0

    def queue(self, include_done: bool = False) -> list[Job]:
        query = ForwardJob.select().order_by(ForwardJob.id)
        if not include_done:
            query = query.where(ForwardJob.state == "pending")
        return [_job(row) for row in query]

    def enqueue_stable(self) -> int:
        """Queue a job per (matching rule, study that became stable) since the cursor; return
        how many.  The first look ever starts at the present: history is not forwarded."""
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            last = Change.select(fn.COALESCE(fn.MAX(Change.seq), 0)).scalar()
            cursor_row = Meta.get_or_none(Meta.key == CURSOR)
            if cursor_row is None:
                Meta.create(key=CURSOR, value=str(last))
                return 0
            cursor = int(cursor_row.value)
            changes = list(
                Change.select(Change.seq, Change.study_uid)
                .where((Change.seq > cursor) & (Change.kind == "study_stable"))
                .order_by(Change.seq)
                .limit(BATCH)
            )
            rules = list(ForwardRule.select())
            now = time.time()
            queued = 0
            for change in changes:
                for rule in rules:
                    if _matches(rule, change.study_uid):
                        ForwardJob.create(
                            rule_id=rule.id, destination=rule.destination, study_uid=change.study_uid,
                            created_at=now, next_attempt_at=now,
                        )  # fmt: skip
                        queued += 1
            # A full batch may stop short of the last change; otherwise skip what is not 'study_stable'.
            new_cursor = changes[-1].seq if len(changes) == BATCH else last
            Meta.update(value=str(new_cursor)).where(Meta.key == CURSOR).execute()
        if queued:
            LOG.info("forward_queued jobs=%d", queued)
        return queued

    def run_due(self, send: Send, stopping: Callable[[], bool] = lambda: False, now: float | None = None) -> int:
        """Send every job that is due; return how many were delivered."""
        now = time.time() if now is None else now
        due = list(
            ForwardJob.select()
            .where((ForwardJob.state == "pending") & (ForwardJob.next_attempt_at <= now))
            .order_by(ForwardJob.next_attempt_at, ForwardJob.id)
        )
        delivered = 0
        for job in due:
            if stopping():
                break
            result = self._attempt(job, send)
            self._record(job, result)
            delivered += int(result.ok)
        return delivered

    def _attempt(self, job: ForwardJob, send: Send) -> SendResult:
        node = self.nodes.get(job.destination)
        if node is None or not node.allows("store"):
            return SendResult(error=f"destination {job.destination!r} is no longer a node Lightbox may send to")
        items = retrieval.instances_for_retrieve("STUDY", {"StudyInstanceUID": [job.study_uid]})
        if not items:
            return SendResult()  # deleted meanwhile: nothing left to send
        try:
            return send(node, items)
        except Exception as exc:  # a sender bug or a broken peer: retry later like any failure
            LOG.exception("forward_send_failed job=%d", job.id)
            return SendResult(failed=len(items), error=f"send failed: {exc}")

    def _record(self, job: ForwardJob, result: SendResult) -> None:
        now = time.time()
        attempts = job.attempts + 1
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            if result.ok:
                values = dict(state="done", attempts=attempts, done_at=now, sent=result.sent, last_error="")
            else:
                delay = min(self.retry_initial * 2 ** (attempts - 1), RETRY_MAX)
                error = result.error or f"{result.failed} instance(s) not accepted"
                values = dict(
                    attempts=attempts, next_attempt_at=now + delay, last_error=error[:ERROR_LENGTH], sent=result.sent
                )
            ForwardJob.update(values).where(ForwardJob.id == job.id).execute()
        if result.ok:
            LOG.info(
                "forward_delivered job=%d destination=%s instances=%d attempts=%d",
                job.id,
                job.destination,
                result.sent,
                attempts,
            )
        else:
            LOG.warning(
                "forward_failed job=%d destination=%s attempts=%d retry_in=%.0f reason=%r",
                job.id, job.destination, attempts, values["next_attempt_at"] - now, values["last_error"],
            )  # fmt: skip
