"""C-MOVE and C-GET against a running Lightbox: DCMTK movescu/getscu/storescp, pynetdicom, Orthanc."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian, JPEG2000Lossless, generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    MRImageStorage,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from support.dicomgen import dataset_bytes, make_study
from support.peers import Orthanc
from support.qr import add_node, movescu_to_storescp
from support.scu import rows
from support.tools import dcmtk

PENDING, SUCCESS, WARNING, CANCELLED, UNKNOWN_DESTINATION = 0xFF00, 0x0000, 0xB000, 0xFE00, 0xA801

pytestmark = pytest.mark.usefixtures("netns")  # storescp and Orthanc cannot bind to 127.0.0.1 only


def study_of(tmp_path: Path, count: int) -> tuple[str, list[Path]]:
    files = make_study(tmp_path / "corpus", count)
    return str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID), files


def by_sop_uid(paths: list[Path]) -> dict[str, bytes]:
    return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): dataset_bytes(p) for p in paths}


def study_identifier(study_uid: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    return ds


def c_get(server, identifier: Dataset, storage_class=SecondaryCaptureImageStorage, syntaxes=None, aet="PYGET"):
    """C-GET with pynetdicom; return (received datasets, final response)."""
    received: list[Dataset] = []

    def on_store(event: evt.Event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return SUCCESS

    ae = AE(ae_title=aet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(storage_class, syntaxes or [ImplicitVRLittleEndian])
    assoc = ae.associate(
        "127.0.0.1",
        server.dicom_port,
        ae_title=server.aet,
        ext_neg=[build_role(storage_class, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    try:
        responses = list(assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet))
    finally:
        assoc.release()
    return received, responses[-1]


@pytest.mark.slow
def test_node_cli_add_list_echo_remove(lightbox):
    add_node(lightbox, "SELF", lightbox.dicom_port, "store")
    listed = lightbox.cli("node", "list")
    assert "SELF host=127.0.0.1" in listed.stdout and "allow=store" in listed.stdout
    echoed = lightbox.cli("node", "echo", "SELF")
    assert echoed.returncode == 0 and echoed.stdout.startswith("ok SELF"), echoed.stdout + echoed.stderr
    assert lightbox.cli("node", "remove", "SELF").returncode == 0
    assert lightbox.cli("node", "remove", "SELF").returncode == 1
    bad = lightbox.cli("node", "add", "--aet", "A\\B", "--host", "h", "--port", "104")
    assert bad.returncode == 2 and "invalid AE title" in bad.stderr


@pytest.mark.slow
def test_movescu_study_to_dcmtk_storescp_arrives_identical(server, tmp_path):
    study_uid, files = study_of(tmp_path, 5)
    assert server.storescu(*files).returncode == 0
    result, received = movescu_to_storescp(server, study_uid, tmp_path / "received")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Received Final Move Response (Success)" in result.stderr
    assert by_sop_uid(received) == by_sop_uid(files)


def test_getscu_series_arrives_identical(server, tmp_path):
    _study_uid, files = study_of(tmp_path, 4)
    assert server.storescu(*files).returncode == 0
    add_node(server, "GETSCU", 1, "get")
    series_uid = str(dcmread(files[0]).SeriesInstanceUID)
    out = tmp_path / "got"
    out.mkdir()
    result = subprocess.run(
        [dcmtk("getscu"), "-v", "-P", "-aet", "GETSCU", "-aec", server.aet, "-od", str(out),
         "-k", "QueryRetrieveLevel=SERIES", "-k", "PatientID=PID-1", "-k", "StudyInstanceUID=",
         "-k", f"SeriesInstanceUID={series_uid}", "127.0.0.1", str(server.dicom_port)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert by_sop_uid(sorted(out.iterdir())) == by_sop_uid(files)


def test_unknown_move_destination_is_a801(server, tmp_path):
    study_uid, files = study_of(tmp_path, 1)
    assert server.storescu(*files).returncode == 0
    add_node(server, "PYMOVE", 1, "move")
    ae = AE(ae_title="PYMOVE")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    responses = list(
        assoc.send_c_move(study_identifier(study_uid), "NOWHERE", StudyRootQueryRetrieveInformationModelMove)
    )
    assoc.release()
    assert [int(status.Status) for status, _ in responses] == [UNKNOWN_DESTINATION]


def test_missing_file_is_a_failed_suboperation_b000(lightbox, tmp_path):
    study_uid, files = study_of(tmp_path, 3)
    assert lightbox.storescu(*files).returncode == 0
    add_node(lightbox, "PYGET", 1, "get")
    lost_uid, lost_key = rows(lightbox.data, "SELECT sop_uid, file_key FROM instance ORDER BY instance_number")[1]
    (lightbox.data / "storage" / lost_key).unlink()  # behind the index's back
    received, (final, identifier) = c_get(lightbox, study_identifier(study_uid))
    assert int(final.Status) == WARNING
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (2, 1)
    assert list(np.atleast_1d(identifier.FailedSOPInstanceUIDList)) == [lost_uid]
    assert len(received) == 2
    assert f"retrieve_instance_failed sop_instance_uid={lost_uid}" in lightbox.log()


def test_unknown_ae_may_not_retrieve_unless_opened(server, lightbox_factory, tmp_path):
    study_uid, files = study_of(tmp_path, 1)
    closed = server  # retrieval by known nodes only, the default
    assert closed.storescu(*files).returncode == 0
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    assoc = ae.associate("127.0.0.1", closed.dicom_port, ae_title=closed.aet)
    assert not assoc.is_established  # its only context, C-GET, was not accepted
    opened = lightbox_factory("opened", query_retrieve_from="any")
    assert opened.storescu(*files).returncode == 0
    received, (final, _) = c_get(opened, study_identifier(study_uid), aet="STRANGER")
    assert int(final.Status) == SUCCESS and len(received) == 1


@pytest.mark.slow
def test_cancel_stops_a_move(server, tmp_path):
    count = 10
    study_uid, files = study_of(tmp_path, count)
    assert server.storescu(*files).returncode == 0
    first_store, cancel_sent = threading.Event(), threading.Event()

    def on_store(event: evt.Event) -> int:
        first_store.set()
        cancel_sent.wait(30)  # hold the first sub-operation until the C-CANCEL is on its way
        return SUCCESS

    destination = AE(ae_title="PYDEST")
    destination.add_supported_context(SecondaryCaptureImageStorage)
    handlers = [(evt.EVT_C_STORE, on_store)]
    destination_scp = destination.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    add_node(server, "PYDEST", destination_scp.server_address[1], "store")
    add_node(server, "PYMOVE", 1, "move")
    ae = AE(ae_title="PYMOVE")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    responses: list = []
    mover = threading.Thread(
        target=lambda: responses.extend(
            assoc.send_c_move(
                study_identifier(study_uid), "PYDEST", StudyRootQueryRetrieveInformationModelMove, msg_id=7
            )
        )
    )
    try:
        mover.start()
        assert first_store.wait(60)
        assoc.send_c_cancel(7, assoc.accepted_contexts[0].context_id)
        cancel_sent.set()
        mover.join(60)
    finally:
        cancel_sent.set()
        assoc.release()
        destination_scp.shutdown()
    final = responses[-1][0]
    assert int(final.Status) == CANCELLED
    assert final.NumberOfCompletedSuboperations + final.NumberOfRemainingSuboperations == count
    assert final.NumberOfRemainingSuboperations > 0


@pytest.mark.slow
def test_jpeg2000_is_decoded_for_a_peer_offering_only_implicit_vr(server, tmp_path):
    source = Path(get_testdata_file("MR_small_jp2klossless.dcm"))
    original = dcmread(source)
    assert original.file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert server.cli("import", str(source)).returncode == 0
    add_node(server, "PYGET", 1, "get")
    received, (final, _) = c_get(
        server, study_identifier(original.StudyInstanceUID), MRImageStorage, [ImplicitVRLittleEndian]
    )
    assert int(final.Status) == SUCCESS and len(received) == 1
    got = received[0]
    assert got.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert np.array_equal(got.pixel_array, original.pixel_array)


@pytest.mark.slow
def test_orthanc_moves_from_lightbox_and_lightbox_moves_to_orthanc(lightbox, tmp_path):
    first_uid, first = study_of(tmp_path / "a", 3)
    second_uid, second = study_of(tmp_path / "b", 2)
    assert lightbox.storescu(*first, *second).returncode == 0
    orthanc = Orthanc(tmp_path / "orthanc", {"lightbox": [lightbox.aet, "127.0.0.1", lightbox.dicom_port]})
    try:
        add_node(lightbox, "ORTHANC", orthanc.dicom_port)
        add_node(lightbox, "PYMOVE", 1, "move")
        # Orthanc pulls the first study: it asks Lightbox to C-MOVE it to Orthanc itself.
        orthanc.rest(
            "POST",
            "/modalities/lightbox/move",
            {"Level": "Study", "Resources": [{"StudyInstanceUID": first_uid}], "TargetAet": "ORTHANC"},
        )
        # Lightbox pushes the second one to Orthanc, on a C-MOVE request from a third AE.
        ae = AE(ae_title="PYMOVE")
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = ae.associate("127.0.0.1", lightbox.dicom_port, ae_title=lightbox.aet)
        final = list(
            assoc.send_c_move(study_identifier(second_uid), "ORTHANC", StudyRootQueryRetrieveInformationModelMove)
        )[-1][0]
        assoc.release()
        assert int(final.Status) == SUCCESS and final.NumberOfCompletedSuboperations == 2
        stored = orthanc.save_instances(tmp_path / "from-orthanc")
    finally:
        orthanc.stop()
    assert by_sop_uid(stored) == by_sop_uid(first + second)


@pytest.mark.slow
def test_orthanc_retrieves_a_patient_with_a_patient_level_move_under_study_root(lightbox, tmp_path):
    """Orthanc's "retrieve patient" is a PATIENT-level C-MOVE under the Study Root model, which
    PS3.4 does not define: Lightbox moves all that patient's studies (and nobody else's)."""
    _first_uid, first = study_of(tmp_path / "a", 2)
    other = make_study(tmp_path / "other", 2, patient_id="PID-OTHER")
    second = make_study(tmp_path / "b", 1, patient_id="PID-1")  # a second study of the same patient
    assert lightbox.storescu(*first, *second, *other).returncode == 0
    orthanc = Orthanc(tmp_path / "orthanc", {"lightbox": [lightbox.aet, "127.0.0.1", lightbox.dicom_port]})
    try:
        add_node(lightbox, "ORTHANC", orthanc.dicom_port)
        orthanc.rest("POST", "/modalities/lightbox/move",
                     {"Level": "Patient", "Resources": [{"PatientID": "PID-1"}], "TargetAet": "ORTHANC"})  # fmt: skip
        stored = orthanc.save_instances(tmp_path / "from-orthanc")
    finally:
        orthanc.stop()
    assert "retrieve_requested op=move" in lightbox.log() and "level=PATIENT" in lightbox.log()
    assert by_sop_uid(stored) == by_sop_uid(first + second)


def test_move_sub_association_proposes_stored_syntax_and_uncompressed():
    from appliance.archive import InstanceFile
    from appliance.dicom.outgoing import requested_contexts

    items = [
        InstanceFile(generate_uid(), str(MRImageStorage), str(JPEG2000Lossless), "k1", 1, "", 0.0),
        InstanceFile(generate_uid(), str(MRImageStorage), "1.2.840.10008.1.2.1", "k2", 1, "", 0.0),
    ]
    assert requested_contexts(items) == [
        (str(MRImageStorage), ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]),
        (str(MRImageStorage), [str(JPEG2000Lossless)]),
    ]
