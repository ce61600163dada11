"""The audit trail followed to the clinic's syslog collector: every event, in order, as a DICOM
audit message, from a cursor kept in the index (so a restart resumes where it stopped), and
the retention applied to what was exported.

Delivery is what syslog gives: a message the TCP or TLS connection accepted is counted as
sent.  While the collector is away the events wait in the trail (retried with a growing
pause, one warning per outage), and the retention never removes one not yet sent.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from appliance.archive import Archive
from appliance.audittrail.message import audit_message
from appliance.audittrail.syslog import SyslogError, SyslogSender, SyslogTarget, frame
from appliance.rounds import round_failed

LOG = logging.getLogger("lightbox.audit")
BATCH = 200
IDLE_S = 2.0  # between looks at the trail when it is quiet
MAX_RETRY_S = 300.0
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True)
class ExportOptions:
    target: SyslogTarget | None  # None: the events stay on the box
    retention_days: float  # 0: kept for ever
    aet: str


class AuditExporter:
    def __init__(self, archive: Archive, options: ExportOptions, stopping: threading.Event) -> None:
        self.archive = archive
        self.options = options
        self.stopping = stopping
        self.hostname = socket.gethostname()
        self.sender = SyslogSender(options.target) if options.target is not None else None

    def run(self) -> None:
        pause, failing, pruned_at = 0.0, False, 0.0
        while not self.stopping.wait(pause):
            try:
                if time.monotonic() - pruned_at >= PRUNE_EVERY_S or not pruned_at:
                    self._prune()
                    pruned_at = time.monotonic()
                sent = self.export_some() if self.sender is not None else 0
                if failing:
                    LOG.warning("audit_export_resumed")
                pause, failing = (0.0 if sent == BATCH else IDLE_S), False
            except SyslogError as exc:
                if not failing:
                    LOG.warning("audit_export_waiting reason=%r", str(exc))
                pause, failing = min(max(pause * 2, 1.0), MAX_RETRY_S), True
            except Exception as exc:  # the index busy or full: try again later
                round_failed(LOG, "audit_export", exc)
                pause = IDLE_S * 5
        if self.sender is not None:
            self.sender.close()

    def export_some(self) -> int:
        """Send the next events; how many were sent."""
        assert self.sender is not None
        audit = self.archive.audit
        cursor = audit.exported_up_to()
        events = audit.since(cursor, BATCH)
        if events and events[0][0].id != cursor + 1 and cursor:
            LOG.warning("audit_export_gap after_id=%d next_id=%d", cursor, events[0][0].id)
        sent = cursor
        try:
            for event, chain in events:
                xml = audit_message(event, chain, f"lightbox@{self.hostname}", self.options.aet)
                self.sender.send(frame(self.hostname, "lightbox", os.getpid(), xml, event.at))
                sent = event.id
        finally:
            if sent != cursor:  # one write per batch, also when the collector went away midway
                audit.mark_exported(sent)
        return len(events)

    def _prune(self) -> None:
        exported = self.archive.audit.exported_up_to() if self.sender is not None else None
        if removed := self.archive.audit.prune(self.options.retention_days, up_to_id=exported):
            LOG.info("audit_retention removed=%d", removed)
