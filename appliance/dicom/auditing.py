"""What the DICOM side adds to the audit trail (PS3.15 A.5.3): associations refused, studies
received, queries answered, studies sent by C-MOVE or C-GET.

Written without waiting for the disk (``durable=False``, as the devices' bookkeeping) and
never raising: an association's outcome matters more than its record.  Refusals are recorded
once a minute per calling AE title and address (across the DICOM worker processes), so that a
flood does not flood the trail.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from pydicom.dataset import Dataset

from appliance.archive import Archive, audit

LOG = logging.getLogger("lightbox.dicom")
REFUSALS_EVERY_S = 60.0
MAX_REFUSERS = 1024  # the (AE title, address) pairs remembered for that

_refused_at: dict[tuple[str, str], float] = {}
_refused_lock = threading.Lock()


def _record(
    archive: Archive, event: str, calling_ae: str, address: str, *,
    action: str = "E", outcome: int = audit.SUCCESS, study_uid: str = "", detail: str = "",
) -> None:  # fmt: skip
    try:
        archive.audit.record(event, calling_ae, address, action=action, outcome=outcome, study_uid=study_uid,
                             detail=detail, durable=False)  # fmt: skip
    except Exception as exc:
        LOG.warning("audit_not_recorded event=%s calling_ae=%r reason=%r", event, calling_ae, str(exc))


def refused(archive: Archive, calling_ae: str, address: str, why: str) -> None:
    if refusal_due(calling_ae, address):
        record_refusal(archive, calling_ae, address, why)


def refusal_due(calling_ae: str, address: str) -> bool:
    """Whether a refusal from this peer is to be recorded: not if this process recorded one in
    the last minute (memory only, never waits: the accepting thread asks it)."""
    now = time.monotonic()
    with _refused_lock:
        if now - _refused_at.get((calling_ae, address), -REFUSALS_EVERY_S) < REFUSALS_EVERY_S:
            return False
        if len(_refused_at) >= MAX_REFUSERS:
            _refused_at.clear()
        _refused_at[(calling_ae, address)] = now
        return True


def record_refusal(archive: Archive, calling_ae: str, address: str, why: str) -> None:
    """The refusal in the trail, unless another worker process recorded one in the last minute."""
    try:
        if archive.audit.recorded_within(REFUSALS_EVERY_S, audit.SECURITY_ALERT, calling_ae, address):
            return
    except Exception as exc:
        LOG.warning("audit_not_read calling_ae=%r reason=%r", calling_ae, str(exc))
    _record(archive, audit.SECURITY_ALERT, calling_ae, address, outcome=audit.MINOR_FAILURE,
            detail=f"association refused: {why}")  # fmt: skip


def received(archive: Archive, calling_ae: str, address: str, studies: Mapping[str, int]) -> None:
    """Images stored from one association, per study."""
    for study_uid, images in studies.items():
        _record(archive, audit.INSTANCES_TRANSFERRED, calling_ae, address, action="C", study_uid=study_uid,
                detail=f"{images} image{'s' if images != 1 else ''} received")  # fmt: skip


def query(archive: Archive, calling_ae: str, address: str, model: str, level: str, outcome: str, results: int) -> None:
    failed = outcome not in ("ok", "cancelled")
    _record(archive, audit.QUERY, calling_ae, address, outcome=audit.MINOR_FAILURE if failed else audit.SUCCESS,
            detail=f"C-FIND {model} {level}: {outcome}, {results} results")  # fmt: skip


def sent(
    archive: Archive, calling_ae: str, address: str, operation: str, identifier: Dataset, counts: tuple[int, ...]
) -> None:
    """A C-MOVE or C-GET ended: what it asked for and how it went ((remaining, completed,
    failed, warning) sub-operations)."""
    remaining, completed, failed, warning = counts
    asked = identifier.get("StudyInstanceUID", "")
    study_uid = asked if isinstance(asked, str) else ""  # one study named, not a list
    level = str(identifier.get("QueryRetrieveLevel", "") or "?")
    outcome = audit.SUCCESS if not failed and not remaining else audit.MINOR_FAILURE
    _record(archive, audit.INSTANCES_TRANSFERRED, calling_ae, address, action="R", outcome=outcome,
            study_uid=study_uid,
            detail=f"{operation} {level}: {completed} sent, {warning} with warnings, {failed} failed, "
                   f"{remaining} not tried")  # fmt: skip


def performed(archive: Archive, calling_ae: str, address: str, step: Mapping[str, Any], action: str) -> None:
    """An MPPS step made (``C``) or changed (``U``): the order it moves is in the trail too."""
    order = f", worklist item {step['worklist_item']}" if step["worklist_item"] is not None else ", unscheduled"
    _record(archive, audit.APPLICATION_ACTIVITY, calling_ae, address, action=action, study_uid=step["study_uid"],
            detail=f"performed procedure step {step['sop_uid']} {step['state']}{order}")  # fmt: skip
