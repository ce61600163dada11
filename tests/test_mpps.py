"""Modality Performed Procedure Step: a pynetdicom SCU (N-CREATE, N-SET over a real socket; DCMTK
has no MPPS SCU tool) runs an order made through the API from SCHEDULED through IN PROGRESS
to COMPLETED or DISCONTINUED; the order, the Schedule and the study page follow; every refusal
the standard names; a step done without an order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.association import Association

from support.dicomgen import make_study

MPPS = "1.2.840.10008.3.1.2.3.3"
SUCCESS, INVALID_VALUE, FAILURE, DUPLICATE, NO_SUCH, MISSING = 0x0000, 0x0106, 0x0110, 0x0111, 0x0112, 0x0120


@pytest.fixture
def scu(server) -> Iterator[Association]:
    """An association for MPPS; its ``responses`` are the command sets received (pynetdicom's
    status does not carry the Affected SOP Instance UID of an N-CREATE-RSP)."""
    ae = AE(ae_title="US1")
    ae.add_requested_context(MPPS)
    responses: list[Dataset] = []
    handlers = [(evt.EVT_DIMSE_RECV, lambda event: responses.append(event.message.command_set))]
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet, evt_handlers=handlers)
    assoc.responses = responses  # type: ignore[attr-defined]
    assert assoc.is_established
    yield assoc
    assoc.release()


def order(admin, patient_id: str, **fields: str) -> dict:
    answer = admin.api_post("/api/worklist", patient_name=f"Mpps^{patient_id}", patient_id=patient_id,
                            modality="US", station_aet="US1", **fields)  # fmt: skip
    assert answer.status_code == 201, answer.text
    return answer.json()


def started(study_uid: str = "", accession: str = "", step_id: str = "", status: str = "IN PROGRESS") -> Dataset:
    """An N-CREATE's dataset as an ultrasound unit sends it."""
    ds = Dataset()
    item = Dataset()
    item.StudyInstanceUID, item.AccessionNumber = study_uid, accession
    item.RequestedProcedureID, item.ScheduledProcedureStepID = accession, step_id or accession
    ds.ScheduledStepAttributesSequence = [item]
    ds.PerformedProcedureStepStatus = status
    ds.PerformedStationAETitle = "US1"
    ds.Modality = "US"
    ds.PerformedProcedureStepDescription = "Abdomen"
    ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime = "20261207", "091500"
    ds.PerformedSeriesSequence = []
    return ds


def ended(status: str, files: list[Path] = (), reason: str = "") -> Dataset:  # type: ignore[assignment]
    """An N-SET's dataset: the final status, end time, the series made (from ``files``)."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate, ds.PerformedProcedureStepEndTime = "20261207", "093000"
    series: dict[str, list[Dataset]] = {}
    for path in files:
        image = dcmread(path, stop_before_pixels=True)
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = image.SOPClassUID, image.SOPInstanceUID
        series.setdefault(image.SeriesInstanceUID, []).append(ref)
    items = []
    for series_uid, refs in series.items():
        item = Dataset()
        item.SeriesInstanceUID, item.SeriesDescription, item.ReferencedImageSequence = series_uid, "Liver", refs
        items.append(item)
    ds.PerformedSeriesSequence = items
    if reason:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "110514", "DCM", reason
        ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = [code]
    return ds


def create(scu: Association, ds: Dataset, uid: str | None = None) -> tuple[int, str]:
    status, _ = scu.send_n_create(ds, MPPS, uid)
    return status.Status, str(scu.responses[-1].get("AffectedSOPInstanceUID", ""))  # type: ignore[attr-defined]


def set_(scu: Association, uid: str, ds: Dataset) -> int:
    status, _ = scu.send_n_set(ds, MPPS, uid)
    return status.Status


def state(admin, item: dict) -> str:
    return admin.get(f"/api/worklist/{item['id']}").json()["state"]


def test_scheduled_in_progress_completed(server, admin, scu, tmp_path):
    item = order(admin, "M1")
    assert item["state"] == "SCHEDULED"
    code, uid = create(scu, started(item["study_uid"], item["accession"]))  # the SCU leaves the UID to us
    assert code == SUCCESS and uid.startswith("1.")
    assert state(admin, item) == "IN PROGRESS"
    files = make_study(
        tmp_path / "us", 3, study_uid=item["study_uid"], patient_id="M1", AccessionNumber=item["accession"]
    )
    sent = server.storescu(*files[:2])  # one image is still on the unit
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert set_(scu, uid, ended("COMPLETED", files)) == SUCCESS
    assert state(admin, item) == "COMPLETED"
    (step,) = admin.get(f"/api/studies/{item['study_uid']}").json()["performed"]
    assert (step["state"], step["worklist_item"], step["station_aet"]) == ("COMPLETED", item["id"], "US1")
    assert (step["end_date"], step["end_time"], step["images"], step["received"]) == ("20261207", "093000", 3, 2)
    assert "2 of 3 images received" in admin.get(f"/studies/{item['study_uid']}").text
    assert server.storescu(files[2]).returncode == 0
    assert "3 of 3 images received" in admin.get(f"/studies/{item['study_uid']}").text
    # The step is final: a late N-SET is refused, and the order stays COMPLETED.
    assert set_(scu, uid, ended("DISCONTINUED")) == FAILURE
    assert state(admin, item) == "COMPLETED"
    trail = admin.get("/api/audit").json()
    details = [e.get("detail", "") for e in trail.get("events", trail.get("items", []))]
    assert f"performed procedure step {uid} COMPLETED, worklist item {item['id']}" in details


def test_discontinued_with_reason_is_shown_to_staff(server, admin, scu, tmp_path):
    item = order(admin, "M2", start_date="20991231")  # listed on the Schedule from today on
    uid = generate_uid()
    assert create(scu, started(accession=item["accession"]), uid) == (SUCCESS, uid)  # found by accession
    assert state(admin, item) == "IN PROGRESS"
    files = make_study(
        tmp_path / "us", 1, study_uid=item["study_uid"], patient_id="M2", AccessionNumber=item["accession"]
    )
    assert server.storescu(*files).returncode == 0
    assert set_(scu, uid, ended("DISCONTINUED", files, reason="Patient refused")) == SUCCESS
    assert state(admin, item) == "DISCONTINUED"
    listed = {i["id"]: i for i in admin.get("/api/worklist?done=1").json()["items"]}
    assert listed[item["id"]]["discontinued_reason"] == "Patient refused"
    schedule = admin.get("/schedule?done=1").text
    assert (
        f'<tr data-item="{item["id"]}" class="discontinued">' in schedule
        and "Discontinued: Patient refused" in schedule
    )
    page = admin.get(f"/studies/{item['study_uid']}").text
    assert 'class="discontinued"' in page and "Patient refused" in page and "1 of 1 image received" in page


def test_refusals(server, admin, scu):
    item = order(admin, "M3")
    assert create(scu, started(item["study_uid"], status="COMPLETED"))[0] == INVALID_VALUE
    assert state(admin, item) == "SCHEDULED"
    uid = generate_uid()
    assert create(scu, started(item["study_uid"]), uid) == (SUCCESS, uid)
    assert create(scu, started(item["study_uid"]), uid)[0] == DUPLICATE
    assert set_(scu, generate_uid(), ended("COMPLETED")) == NO_SUCH
    assert set_(scu, uid, ended("FINISHED")) == INVALID_VALUE
    too_many = ended("COMPLETED")
    too_many.PerformedSeriesSequence = [Dataset() for _ in range(1001)]
    for series in too_many.PerformedSeriesSequence:
        series.SeriesInstanceUID = generate_uid()
    assert set_(scu, uid, too_many) == FAILURE  # bounded: the step is left as it was
    no_order = started(item["study_uid"])
    del no_order.ScheduledStepAttributesSequence
    assert create(scu, no_order)[0] == MISSING
    assert state(admin, item) == "IN PROGRESS"
    assert set_(scu, uid, ended("DISCONTINUED")) == SUCCESS
    assert set_(scu, uid, ended("COMPLETED")) == FAILURE
    assert state(admin, item) == "DISCONTINUED"


def test_unscheduled_step_is_kept_with_its_study(server, admin, scu, tmp_path):
    files = make_study(tmp_path / "us", 2, patient_id="M4", AccessionNumber="WALKIN1")
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    code, uid = create(scu, started(study_uid, "WALKIN1"))
    assert code == SUCCESS
    assert server.storescu(*files).returncode == 0
    assert set_(scu, uid, ended("COMPLETED", files)) == SUCCESS
    detail = admin.get(f"/api/studies/{study_uid}").json()
    assert detail["orders"] == []
    (step,) = detail["performed"]
    assert (step["sop_uid"], step["worklist_item"], step["state"], step["received"]) == (uid, None, "COMPLETED", 2)
    page = admin.get(f"/studies/{study_uid}").text
    assert "unscheduled" in page and "2 of 2 images received" in page
