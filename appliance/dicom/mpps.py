"""The Modality Performed Procedure Step service (PS3.4 F): a modality's N-CREATE says it
started a step (IN PROGRESS), its N-SETs change it until COMPLETED or DISCONTINUED.  The
dataset is read in memory (bounded like an identifier) and turned into the plain fields the
archive keeps (``archive.performed``), which ties the step to its order and moves the order's
state with it.

Answers (PS3.4 F.7.2): an N-CREATE with a status other than IN PROGRESS is 0x0106, without a
Scheduled Step Attributes Sequence 0x0120, of a SOP Instance UID already known 0x0111; an
N-SET of an unknown step is 0x0112, of a COMPLETED or DISCONTINUED one 0x0110, to another
status 0x0106.
"""

from __future__ import annotations

import logging
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from appliance.archive import PERFORMED_STATES, DuplicateStep, FinalStep, NoSuchStep, PerformedStepError
from appliance.dicom import auditing, dimse
from appliance.dicom.context import Final, Request, ServiceContext
from appliance.dicom.status import (
    DUPLICATE_SOP_INSTANCE,
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE,
    NO_SUCH_SOP_INSTANCE,
    PROCESSING_FAILURE,
    SUCCESS,
)

LOG = logging.getLogger("lightbox.dicom")

SOP_CLASS = "1.2.840.10008.3.1.2.3.3"  # Modality Performed Procedure Step
_STATUS = "PerformedProcedureStepStatus"
_SCHEDULED = {"study_uid": "StudyInstanceUID", "accession": "AccessionNumber",
              "requested_procedure_id": "RequestedProcedureID", "step_id": "ScheduledProcedureStepID"}  # fmt: skip
_STEP = {"station_aet": "PerformedStationAETitle", "modality": "Modality",
         "description": "PerformedProcedureStepDescription", "start_date": "PerformedProcedureStepStartDate",
         "start_time": "PerformedProcedureStepStartTime", "end_date": "PerformedProcedureStepEndDate",
         "end_time": "PerformedProcedureStepEndTime"}  # fmt: skip


def serve(context: ServiceContext, request: Request[Dataset]) -> Final:
    try:
        if request.command.field == dimse.N_CREATE_RQ:
            return _create(context, request.command, request.dataset)
        return _set(context, request.command, request.dataset)
    except PerformedStepError as exc:
        LOG.info("mpps_refused calling_ae=%r reason=%r", context.calling_ae, str(exc))
        status = {DuplicateStep: DUPLICATE_SOP_INSTANCE, NoSuchStep: NO_SUCH_SOP_INSTANCE}.get(
            type(exc), PROCESSING_FAILURE
        )
        return Final(status, str(exc))


def _create(context: ServiceContext, command: dimse.Command, dataset: Dataset) -> Final:
    sop_uid = command.text(dimse.AFFECTED_SOP_INSTANCE) or generate_uid()
    status = _text(dataset, _STATUS)
    if status != "IN PROGRESS":
        return Final(INVALID_ATTRIBUTE_VALUE, f"a new step's status must be IN PROGRESS, not {status!r}")
    if "ScheduledStepAttributesSequence" not in dataset:
        return Final(MISSING_ATTRIBUTE, "Scheduled Step Attributes Sequence missing")
    scheduled = [{key: _text(item, kw) for key, kw in _SCHEDULED.items()}
                 for item in dataset.ScheduledStepAttributesSequence]  # fmt: skip
    step = context.archive.performed.create(sop_uid, {**_fields(dataset), "calling_ae": context.calling_ae}, scheduled)
    auditing.performed(context.archive, context.calling_ae, context.origin.address, step, "C")
    LOG.info("mpps_created calling_ae=%r sop_uid=%s worklist_item=%s", context.calling_ae, sop_uid,
             step["worklist_item"])  # fmt: skip
    return Final(SUCCESS, instance=sop_uid)


def _set(context: ServiceContext, command: dimse.Command, dataset: Dataset) -> Final:
    sop_uid = command.text(dimse.REQUESTED_SOP_INSTANCE)
    step = context.archive.performed.get(sop_uid)
    if step is None:
        raise NoSuchStep(f"no performed procedure step {sop_uid}")
    state = _text(dataset, _STATUS) or step["state"]
    if state not in PERFORMED_STATES:
        return Final(INVALID_ATTRIBUTE_VALUE, f"unknown step status {state!r}")
    try:
        changed = context.archive.performed.update(sop_uid, state, _fields(dataset))
    except FinalStep as exc:
        return Final(PROCESSING_FAILURE, str(exc), instance=sop_uid)
    auditing.performed(context.archive, context.calling_ae, context.origin.address, changed, "U")
    LOG.info("mpps_set calling_ae=%r sop_uid=%s state=%r", context.calling_ae, sop_uid, changed["state"])
    return Final(SUCCESS, instance=sop_uid)


def _fields(dataset: Dataset) -> dict[str, Any]:
    """The step's attributes this dataset holds (an N-SET holds only those it changes)."""
    fields: dict[str, Any] = {key: _text(dataset, kw) for key, kw in _STEP.items() if kw in dataset}
    if "PerformedSeriesSequence" in dataset:
        fields["series"] = [
            {"series_uid": _text(item, "SeriesInstanceUID"), "description": _text(item, "SeriesDescription"),
             "images": len(item.get("ReferencedImageSequence") or [])
             + len(item.get("ReferencedNonImageCompositeSOPInstanceSequence") or [])}
            for item in dataset.PerformedSeriesSequence
        ]  # fmt: skip
    reasons = dataset.get("PerformedProcedureStepDiscontinuationReasonCodeSequence") or []
    if reasons:
        fields["reason"] = _text(reasons[0], "CodeMeaning") or _text(reasons[0], "CodeValue")
    return fields


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    return "" if value is None else str(value).strip()
