"""Forwarding: a study sent to Lightbox arrives at a DCMTK storescp once stable; with the
destination down it is retried (persistent queue, backoff) and delivered when it comes back,
also across a Lightbox restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ImplicitVRLittleEndian

from support.dicomgen import dataset_bytes, make_study
from support.peers import StoreSCP
from support.ports import free_port
from support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("netns")]  # restarts and retry back-off; storescp


def by_sop_uid(paths: list[Path]) -> dict[str, bytes]:
    return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): dataset_bytes(p) for p in paths}


def job_of(server, study_uid: str) -> str:
    """The queue line of the job forwarding this study ('' if none)."""
    queue = server.cli("forward", "queue", "--all").stdout
    return next((line for line in queue.splitlines() if f"study={study_uid}" in line), "")


def attempts(line: str) -> int:
    return int(line.split("attempts=")[1].split()[0]) if line else 0


def test_stable_study_is_forwarded_and_retried_until_delivered_across_restart(lightbox_factory, tmp_path) -> None:
    scp_port = free_port()
    server = lightbox_factory(stable_age=1, forward_retry_initial=1, dicom_workers=0)
    assert server.cli("node", "add", "--aet", "WORKSTATION", "--host", "127.0.0.1", "--port", str(scp_port),
                      "--allow", "store").returncode == 0  # fmt: skip
    added = server.cli("forward", "add", "--to", "WORKSTATION")
    assert added.returncode == 0 and "to=WORKSTATION all studies" in added.stdout, added.stderr
    assert server.cli("forward", "add", "--to", "WORKSTATION", "--modality", "US").returncode == 0
    assert server.cli("forward", "add", "--to", "NOBODY").returncode == 2  # not a node
    assert "rule 2 to=WORKSTATION modality=US" in server.cli("forward", "list").stdout

    # Destination up: the study arrives, byte for byte, once stable; the US rule does not match.
    first = make_study(tmp_path / "first", 3)
    scp = StoreSCP(tmp_path / "received-1", aet="WORKSTATION", port=scp_port)
    try:
        assert server.storescu(*first).returncode == 0
        wait_for(lambda: len(scp.files()) == 3, "the first study did not arrive")
        assert by_sop_uid(scp.files()) == by_sop_uid(first)
    finally:
        scp.stop()
    study = str(dcmread(first[0], stop_before_pixels=True).StudyInstanceUID)
    wait_for(lambda: "state=done" in job_of(server, study), "the first job was not marked done")
    assert "rule=1" in job_of(server, study) and "sent=3" in job_of(server, study)
    assert server.cli("forward", "queue", "--all").stdout.count(f"study={study}") == 1

    # Destination down: retried with backoff, delivered when it comes back.
    second = make_study(tmp_path / "second", 2)
    study = str(dcmread(second[0], stop_before_pixels=True).StudyInstanceUID)
    assert server.storescu(*second).returncode == 0
    wait_for(lambda: attempts(job_of(server, study)) >= 2, "the second study was not retried")
    assert "state=pending" in job_of(server, study) and "connection refused" in job_of(server, study).lower()
    scp = StoreSCP(tmp_path / "received-2", aet="WORKSTATION", port=scp_port)
    try:
        wait_for(lambda: len(scp.files()) == 2, "the second study did not arrive after the destination came back")
        assert by_sop_uid(scp.files()) == by_sop_uid(second)
    finally:
        scp.stop()

    # Destination down across a restart: the queue is in the index.
    third = make_study(tmp_path / "third", 2)
    study = str(dcmread(third[0], stop_before_pixels=True).StudyInstanceUID)
    assert server.storescu(*third).returncode == 0
    wait_for(lambda: attempts(job_of(server, study)) >= 1, "the third study was not tried")
    assert server.stop() == 0
    assert "state=pending" in job_of(server, study)
    scp = StoreSCP(tmp_path / "received-3", aet="WORKSTATION", port=scp_port)
    try:
        server.start()
        wait_for(lambda: len(scp.files()) == 2, "the third study did not arrive after the restart")
        assert by_sop_uid(scp.files()) == by_sop_uid(third)
    finally:
        scp.stop()
    wait_for(lambda: "state=done" in job_of(server, study), "the third job was not marked done")
    assert "the forwarding queue is empty" in server.cli("forward", "queue").stdout
    assert server.cli("forward", "remove", "2").returncode == 0
    assert server.cli("forward", "remove", "2").returncode == 1


def test_forward_converts_for_a_destination_that_refuses_the_stored_syntax(lightbox_factory, tmp_path) -> None:
    files = make_study(tmp_path / "study", 2)  # stored as Explicit VR Little Endian
    scp = StoreSCP(tmp_path / "received", aet="IMPLICIT_ONLY", extra=("+xi",))  # accepts Implicit VR only
    server = lightbox_factory(stable_age=1, dicom_workers=0)
    try:
        assert server.cli("node", "add", "--aet", "IMPLICIT_ONLY", "--host", "127.0.0.1", "--port", str(scp.port),
                          "--allow", "store").returncode == 0  # fmt: skip
        assert server.cli("forward", "add", "--to", "IMPLICIT_ONLY").returncode == 0
        assert server.storescu(*files).returncode == 0
        wait_for(lambda: len(scp.files()) == 2, "the study did not arrive")
        received = {str(ds.SOPInstanceUID): ds for ds in map(dcmread, scp.files())}
    finally:
        scp.stop()
    for path in files:
        sent = dcmread(path)
        got = received[str(sent.SOPInstanceUID)]
        assert got.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        assert got.PixelData == sent.PixelData and got.PatientName == sent.PatientName
