"""Storage Commitment Push Model against a running Lightbox, with a pynetdicom SCU as the modality:
the report on the same association and on a new one, damaged and missing instances, the backup
setting, permissions and the request's bound."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import SecondaryCaptureImageStorage, StorageCommitmentPushModel

from support.dicomgen import make_study
from support.lightbox import LightboxProcess, running
from support.ports import free_port
from support.qr import add_node
from support.scu import rows
from support.waiting import wait_for

WELL_KNOWN = "1.2.840.10008.1.20.1.1"
PROCESSING_FAILURE, NO_SUCH_OBJECT, CLASS_INSTANCE_CONFLICT, DUPLICATE_TRANSACTION = 0x0110, 0x0112, 0x0119, 0x0131
SC = str(SecondaryCaptureImageStorage)  # what make_study writes
MODALITY = "US_UNIT"  # a known node, allowed to ask for commitment


def commit_request(refs: list[tuple[str, str]], transaction: str | None = None) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction or generate_uid()
    ds.ReferencedSOPSequence = []
    for sop_class, sop_instance in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        ds.ReferencedSOPSequence.append(item)
    return ds


class Report:
    """The N-EVENT-REPORT received: its event type and dataset."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.event_type: int | None = None
        self.info: Dataset | None = None

    def handler(self, event: evt.Event) -> tuple[int, None]:
        self.event_type = int(event.request.EventTypeID)
        self.info = event.event_information
        self.arrived.set()
        return 0x0000, None  # the N-EVENT-REPORT-RSP: success, no reply dataset

    def outcome(self) -> tuple[set[str], dict[str, int]]:
        """(committed SOP Instance UIDs, failed ones -> Failure Reason)."""
        assert self.arrived.wait(30), "no N-EVENT-REPORT"
        assert self.info is not None
        committed = {str(i.ReferencedSOPInstanceUID) for i in self.info.get("ReferencedSOPSequence", [])}
        failed = {str(i.ReferencedSOPInstanceUID): int(i.FailureReason) for i in self.info.get("FailedSOPSequence", [])}
        return committed, failed


def n_action(server: LightboxProcess, request: Dataset, report: Report | None, aet: str = MODALITY,
             until: Report | None = None):  # fmt: skip
    """Send the N-ACTION-RQ as a pynetdicom SCU listening for ``report`` on this association
    (None: not listening); release once ``until`` has arrived (default ``report``; None: at
    once).  The N-ACTION-RSP status, or None when the context was not accepted."""
    until = until or report
    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(StorageCommitmentPushModel)
    handlers = [(evt.EVT_N_EVENT_REPORT, report.handler)] if report else []
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet, evt_handlers=handlers)
    if not assoc.is_established:  # pynetdicom aborts when no context was accepted
        assert not assoc.is_rejected
        return None
    try:
        status, _reply = assoc.send_n_action(request, 1, StorageCommitmentPushModel, WELL_KNOWN)
        if until is not None and status and status.Status == 0:
            assert until.arrived.wait(30), "no N-EVENT-REPORT"
        return int(status.Status)
    finally:
        assoc.release()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightboxProcess]:
    data = tmp_path_factory.mktemp("commit") / "data"
    with running(data) as lightbox:
        yield lightbox


@pytest.fixture(scope="module")
def stored(server: LightboxProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Four instances stored; the file of the one named "damaged" has a byte flipped on disk."""
    files = make_study(tmp_path_factory.mktemp("corpus"), 4)
    result = server.storescu(*files)
    assert result.returncode == 0, result.stderr
    uids = [str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    ((key,),) = rows(server.data, "SELECT file_key FROM instance WHERE sop_uid = ?", uids[2])
    path = server.data / "storage" / key
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 0xFF
    path.write_bytes(bytes(damaged))
    return {"good1": uids[0], "good2": uids[1], "damaged": uids[2], "wrong_class": uids[3]}


def mixed_set(stored: dict[str, str]) -> tuple[Dataset, str]:
    missing = generate_uid()
    refs = [
        (SC, stored["good1"]), (SC, stored["good2"]), (SC, stored["damaged"]),
        (str(MRImageStorage), stored["wrong_class"]), (SC, missing),
    ]  # fmt: skip
    return commit_request(refs), missing


def expected(stored: dict[str, str], missing: str) -> tuple[set[str], dict[str, int]]:
    return {stored["good1"], stored["good2"]}, {
        stored["damaged"]: PROCESSING_FAILURE,
        stored["wrong_class"]: CLASS_INSTANCE_CONFLICT,
        missing: NO_SUCH_OBJECT,
    }


def test_commitment_report_on_the_same_association(server: LightboxProcess, stored: dict[str, str]) -> None:
    add_node(server, MODALITY, 1, "commit")
    request, missing = mixed_set(stored)
    report = Report()
    assert n_action(server, request, report) == 0x0000
    assert report.event_type == 2
    assert report.outcome() == expected(stored, missing)
    assert report.info is not None and report.info.TransactionUID == request.TransactionUID
    delivered = f"transaction_uid={request.TransactionUID} on=same_association status=0x0000"
    wait_for(lambda: delivered in server.log(), "the report logged as delivered")


def test_commitment_all_committed_is_event_type_1(server: LightboxProcess, stored: dict[str, str]) -> None:
    add_node(server, MODALITY, 1, "commit")
    report = Report()
    request = commit_request([(SC, stored["good1"]), (SC, stored["good2"])])
    assert n_action(server, request, report) == 0x0000
    assert report.outcome() == ({stored["good1"], stored["good2"]}, {})
    assert report.event_type == 1


@pytest.mark.parametrize("modality", ["releases", "does_not_listen"])
def test_commitment_report_on_a_new_association(server: LightboxProcess, stored: dict[str, str], modality: str) -> None:
    """The modality releases after the N-ACTION-RSP (or stays, answering the report with a
    failure: it listens for it elsewhere); Lightbox calls it back at its node's port, in the SCP
    role the modality grants."""
    report = Report()
    listener = AE(ae_title=MODALITY)
    listener.add_supported_context(StorageCommitmentPushModel, scu_role=False, scp_role=True)
    port = free_port()
    scp = listener.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, report.handler)]
    )
    try:
        add_node(server, MODALITY, port, "commit")
        request, missing = mixed_set(stored)
        assert n_action(server, request, None, until=report if modality == "does_not_listen" else None) == 0x0000
        assert report.outcome() == expected(stored, missing)
        assert report.event_type == 2
        assert report.info is not None and report.info.TransactionUID == request.TransactionUID
    finally:
        scp.shutdown()
    delivered = f"transaction_uid={request.TransactionUID} on=new_association status=0x0000"
    wait_for(lambda: delivered in server.log(), "the report logged as delivered")
    if modality == "does_not_listen":
        assert f"transaction_uid={request.TransactionUID} on=same_association status=0x0110" in server.log()


def test_a_transaction_uid_still_being_answered_is_a_duplicate(server: LightboxProcess, stored: dict[str, str]) -> None:
    """The first report waits to be retried (nothing listens at the node's port): the same
    Transaction UID meanwhile is answered 0131 for every instance, never committed."""
    add_node(server, "UNREACHABLE", free_port(), "commit")
    request = commit_request([(SC, stored["good1"])])
    assert n_action(server, request, None, aet="UNREACHABLE") == 0x0000  # released at once
    wait_for(lambda: f"transaction_uid={request.TransactionUID} attempt=1" in server.log(), "a failed delivery")
    again = Report()
    assert n_action(server, request, again, aet="UNREACHABLE") == 0x0000
    assert again.outcome() == (set(), {stored["good1"]: DUPLICATE_TRANSACTION})


def test_commitment_needs_the_commit_permission(server: LightboxProcess, stored: dict[str, str]) -> None:
    add_node(server, "QUERY_ONLY", 1, "find")
    request = commit_request([(SC, stored["good1"])])
    assert n_action(server, request, Report(), aet="QUERY_ONLY") is None
    assert n_action(server, request, Report(), aet="UNKNOWN_AE") is None  # query_retrieve_from=known-nodes
    log = server.log()
    for aet in ("QUERY_ONLY", "UNKNOWN_AE"):
        assert f"query_retrieve_refused calling_ae='{aet}'" in log and "operations=commit" in log


def test_commitment_over_the_bound_is_refused(server: LightboxProcess) -> None:
    add_node(server, MODALITY, 1, "commit")
    request = commit_request([(SC, f"1.2.3.{n}") for n in range(10_001)])
    assert n_action(server, request, Report()) == 0x0213  # Resource limitation: no report follows


def test_commitment_requires_backup_commits_nothing_without_one(tmp_path: Path) -> None:
    with running(tmp_path / "data", commitment_requires_backup=True) as lightbox:
        files = make_study(tmp_path / "corpus", 2)
        assert lightbox.storescu(*files).returncode == 0
        uids = [str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
        add_node(lightbox, MODALITY, 1, "commit")
        report = Report()
        assert n_action(lightbox, commit_request([(SC, uid) for uid in uids]), report) == 0x0000
        assert report.outcome() == (set(), dict.fromkeys(uids, PROCESSING_FAILURE))
        assert report.event_type == 2


@pytest.mark.slow  # a real S3 server (moto) and the backup commands
def test_commitment_requires_backup_commits_what_a_verification_found(moto, tmp_path: Path) -> None:
    """Backed up and verified: committed; backed up but stored after the verification, or not
    backed up at all: failed."""
    from support.backupbox import Box  # boto3 and moto: only where a test needs them

    moto.client().create_bucket(Bucket="commit")
    box = Box(tmp_path / "data", moto.endpoint, "commit")
    files = make_study(tmp_path / "corpus", 3)
    uids = [str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    box.ok("import", files[0])
    box.init()
    box.backup()
    box.ok("backup", "verify")  # everything
    box.ok("import", files[1])
    box.backup()  # uploaded, never verified
    box.ok("import", files[2])  # not backed up
    with running(box.data, commitment_requires_backup=True) as lightbox:
        add_node(lightbox, MODALITY, 1, "commit")
        report = Report()
        assert n_action(lightbox, commit_request([(SC, uid) for uid in uids]), report) == 0x0000
        assert report.outcome() == ({uids[0]}, {uids[1]: PROCESSING_FAILURE, uids[2]: PROCESSING_FAILURE})
