"""A storage commitment's answer (PS3.4 J.3.3): the N-EVENT-REPORT-RQ listing the committed
and the failed instances, sent where the modality can hear it.

First on the association the N-ACTION came on, when the peer has not spoken since (it waits
for the report there).  When the peer has released it meanwhile (or speaks first, or answers
the report with a failure status: nothing listened for it there), on a new
association Lightbox opens to the calling AE as a known node (its host and port in the node
table), proposing the Storage Commitment class with Lightbox in the SCP role only (PS3.7
D.3.3.4): a peer that does not grant that role is not sent the report.  That delivery runs
on a thread of its own and is tried ``len(RETRY_DELAYS)`` times; an AE that is not a known
node cannot be reached at all.  A report that cannot be delivered is logged
(``commitment_report_undeliverable``) and not kept: the modality, having heard nothing, asks
again (a new N-ACTION), and every instance is decided anew then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from appliance.archive import DicomNode
from appliance.dicom import dimse, pdu
from appliance.dicom.context import ServiceContext
from appliance.dicom.options import AssociationOptions
from appliance.dicom.requestor import AssociationFailed, associate, release
from appliance.dicom.sender import tls_for
from appliance.dicom.status import SUCCESS
from appliance.dicom.syntaxes import EXPLICIT_LE, IMPLICIT_LE

LOG = logging.getLogger("lightbox.dicom")

SOP_CLASS = "1.2.840.10008.1.20.1"  # Storage Commitment Push Model
WELL_KNOWN_INSTANCE = "1.2.840.10008.1.20.1.1"
ALL_COMMITTED, SOME_FAILED = 1, 2  # Event Type IDs
RETRY_DELAYS = (0.0, 10.0, 60.0, 300.0)  # seconds before each attempt on a new association
MESSAGE_ID = 1  # one request of ours is outstanding at a time on an association


@dataclass(frozen=True)
class Reference:
    sop_class: str
    sop_instance: str


@dataclass
class Decision:
    """A transaction's answer: the committed references, and the failed ones with their reason."""

    transaction_uid: str
    committed: list[Reference] = field(default_factory=list)
    failed: list[tuple[Reference, int]] = field(default_factory=list)

    @property
    def event_type(self) -> int:
        return SOME_FAILED if self.failed else ALL_COMMITTED


def event_information(decision: Decision, explicit: bool) -> bytes:
    """The N-EVENT-REPORT's dataset (PS3.4 Table J.3-2), encoded in Little Endian."""
    ds = Dataset()
    ds.TransactionUID = decision.transaction_uid
    if decision.committed:
        ds.ReferencedSOPSequence = [_item(ref) for ref in decision.committed]
    if decision.failed:
        ds.FailedSOPSequence = [_item(ref, reason) for ref, reason in decision.failed]
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, not explicit
    write_dataset(out, ds)
    return out.getvalue()


def _item(ref: Reference, reason: int | None = None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ref.sop_class
    item.ReferencedSOPInstanceUID = ref.sop_instance
    if reason is not None:
        item.FailureReason = reason
    return item


def report(
    context: ServiceContext, context_id: int, explicit: bool, decision: Decision, finished: Callable[[], None]
) -> None:
    """Send ``decision`` to the peer, here (on presentation context ``context_id``, in Explicit VR
    or not) or on a new association; ``finished`` is called once it is delivered or given up."""
    message = dimse.event_report_request(MESSAGE_ID, SOP_CLASS, WELL_KNOWN_INSTANCE, decision.event_type)
    try:
        status = context.request_peer(context_id, message, event_information(decision, explicit))
    except BaseException:
        _on_new_association(context, decision, finished)
        raise
    if status != SUCCESS:  # not heard (released first), or refused (no one listens for it there)
        if status is not None:
            LOG.warning(
                "commitment_report_refused calling_ae=%r transaction_uid=%s on=same_association status=0x%04X",
                context.calling_ae, decision.transaction_uid, status,
            )  # fmt: skip
        _on_new_association(context, decision, finished)
        return
    LOG.info(
        "commitment_reported calling_ae=%r transaction_uid=%s on=same_association status=0x%04X",
        context.calling_ae, decision.transaction_uid, status,
    )  # fmt: skip
    finished()


def _on_new_association(context: ServiceContext, decision: Decision, finished: Callable[[], None]) -> None:
    node = context.archive.nodes.get(context.calling_ae)
    if node is None:
        _undeliverable(context.calling_ae, decision, "the calling AE is not a known node")
        finished()
        return
    threading.Thread(
        target=_deliver, args=(node, context.options, decision, finished), name="commitment-report", daemon=True
    ).start()


def _deliver(node: DicomNode, options: AssociationOptions, decision: Decision, finished: Callable[[], None]) -> None:
    try:
        reason = ""
        for attempt, delay in enumerate(RETRY_DELAYS, 1):
            time.sleep(delay)
            try:
                status = send_on_new_association(node, options, decision)
                if status != SUCCESS:
                    raise AssociationFailed(f"N-EVENT-REPORT-RSP status 0x{status:04X}")
            except AssociationFailed as exc:
                reason = str(exc)
                LOG.warning(
                    "commitment_report_failed calling_ae=%r transaction_uid=%s attempt=%d reason=%r",
                    node.aet, decision.transaction_uid, attempt, reason,
                )  # fmt: skip
                continue
            LOG.info(
                "commitment_reported calling_ae=%r transaction_uid=%s on=new_association status=0x%04X",
                node.aet, decision.transaction_uid, status,
            )  # fmt: skip
            return
        _undeliverable(node.aet, decision, f"{len(RETRY_DELAYS)} attempts failed, the last: {reason}")
    finally:
        finished()


def send_on_new_association(node: DicomNode, options: AssociationOptions, decision: Decision) -> int:
    """The report on an association to ``node`` (Lightbox in the SCP role); the peer's status."""
    link, accepted = associate(
        node.host, node.port, options.aet, node.aet, [(SOP_CLASS, [EXPLICIT_LE, IMPLICIT_LE])], options.max_pdu,
        options.network_timeout, tls_for(node, options.tls_identity), roles={SOP_CLASS: (False, True)},
    )  # fmt: skip
    try:
        syntaxes = accepted.get(SOP_CLASS)
        if not syntaxes:
            raise AssociationFailed(f"{node.aet} did not accept Storage Commitment with Lightbox as its SCP")
        syntax, context_id = next(iter(syntaxes.items()))
        message = dimse.event_report_request(MESSAGE_ID, SOP_CLASS, WELL_KNOWN_INSTANCE, decision.event_type)
        try:
            link.send(context_id, message, event_information(decision, syntax == EXPLICIT_LE))
            answer = link.read_command(dimse.MAX_COMMAND_SET)
            if isinstance(answer, str):
                raise AssociationFailed(f"{node.aet} sent {answer} instead of an N-EVENT-REPORT-RSP")
            response = dimse.decode(answer[1])
        except (OSError, pdu.ProtocolError) as exc:
            raise AssociationFailed(f"association with {node.aet} broke: {exc}") from exc
        if response.field != dimse.N_EVENT_REPORT_RSP or response.us(dimse.MESSAGE_ID_BEING_RESPONDED_TO) != MESSAGE_ID:
            raise AssociationFailed(f"{node.aet} answered something other than the N-EVENT-REPORT")
        return response.us(dimse.STATUS)
    finally:
        release(link)


def _undeliverable(calling_ae: str, decision: Decision, reason: str) -> None:
    LOG.warning(
        "commitment_report_undeliverable calling_ae=%r transaction_uid=%s committed=%d failed=%d reason=%r",
        calling_ae, decision.transaction_uid, len(decision.committed), len(decision.failed), reason,
    )  # fmt: skip
