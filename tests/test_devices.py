"""Learned devices: every association is recorded; locked mode refuses unknown devices until
an admin approves them; quirks (character set override, lenient AE title); C-ECHO a device."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydicom.uid import SecondaryCaptureImageStorage
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from appliance.archive import Archive
from appliance.archive.registry.devices import AssociationSeen
from support.dicomgen import make_dataset, make_study, write
from support.ports import free_port
from support.scu import rows, store

pytestmark = pytest.mark.slow  # locked policies, restarts, DCMTK peers

DCMTK_IMPLEMENTATION = "1.2.276.0.7230010.3.0."  # OFFIS DCMTK's implementation class UID root
REJECTED_CALLING_AE = "Reason: Calling AE Title Not Recognized"


def device_row(server, aet: str) -> dict | None:
    found = rows(
        server.data,
        "SELECT status, host, implementation_class_uid, implementation_version, sop_classes, transfer_syntaxes,"
        " first_seen, last_seen, associations, refused, studies_received, images_received, last_error, name"
        " FROM device WHERE aet = ?",
        aet,
    )
    if not found:
        return None
    keys = ["status", "host", "implementation_class_uid", "implementation_version", "sop_classes", "transfer_syntaxes", "first_seen", "last_seen", "associations", "refused", "studies_received", "images_received", "last_error", "name"]  # fmt: skip
    return dict(zip(keys, found[0], strict=True))


def device_cli(server, *args: str) -> subprocess.CompletedProcess:
    return server.cli("device", *args)


def test_unknown_storescu_is_recorded_with_what_it_proposed_and_sent(lightbox, tmp_path: Path) -> None:
    first = make_study(tmp_path / "a", 3)
    second = make_study(tmp_path / "b", 2)
    assert lightbox.storescu(*first, aet="US_UNIT_1").returncode == 0
    assert lightbox.storescu(*second, aet="US_UNIT_1").returncode == 0

    device = device_row(lightbox, "US_UNIT_1")
    assert device is not None
    assert device["status"] == "new" and device["host"] == "127.0.0.1"
    assert device["implementation_class_uid"].startswith(DCMTK_IMPLEMENTATION)
    assert device["implementation_version"].startswith("OFFIS_DCMTK")
    assert SecondaryCaptureImageStorage in device["sop_classes"]
    assert "1.2.840.10008.1.2.1" in device["transfer_syntaxes"]  # Explicit VR Little Endian
    assert device["associations"] == 2 and device["refused"] == 0
    assert device["studies_received"] == 2 and device["images_received"] == 5
    assert 0 < device["first_seen"] < device["last_seen"]

    listed = device_cli(lightbox, "list")
    assert listed.returncode == 0
    line = next(row for row in listed.stdout.splitlines() if row.startswith("US_UNIT_1 "))
    assert "status=new" in line and "studies=2" in line and "images=5" in line and "associations=2" in line

    # A refused instance is the device's last error.
    ds = make_dataset()
    del ds.StudyInstanceUID
    assert store(lightbox, [ds], aet="US_UNIT_1") != [0]
    assert "refused" in device_row(lightbox, "US_UNIT_1")["last_error"]


def test_locked_refuses_unknown_device_until_approved(lightbox_factory, tmp_path: Path) -> None:
    server = lightbox_factory(device_policy="locked")
    files = make_study(tmp_path / "s", 2)

    refused = server.storescu(*files, aet="XRAY_ROOM_2")
    assert refused.returncode != 0
    assert REJECTED_CALLING_AE in refused.stdout + refused.stderr
    assert server.count() == 0
    device = device_row(server, "XRAY_ROOM_2")
    assert device["status"] == "refused" and device["refused"] == 1 and device["associations"] == 0
    assert "status=refused" in device_cli(server, "list").stdout

    # Query/retrieve associations (served by pynetdicom) are held to the same policy.
    ae = AE(ae_title="XRAY_ROOM_2")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_rejected
    assert (
        assoc.acceptor.primitive.result,
        assoc.acceptor.primitive.result_source,
        assoc.acceptor.primitive.diagnostic,
    ) == (1, 1, 3)

    approved = device_cli(server, "approve", "XRAY_ROOM_2")
    assert approved.returncode == 0 and "status=approved" in approved.stdout, approved.stderr
    assert server.storescu(*files, aet="XRAY_ROOM_2").returncode == 0
    assert server.count() == 2
    device = device_row(server, "XRAY_ROOM_2")
    assert device["status"] == "approved" and device["associations"] == 1 and device["images_received"] == 2

    # A node added by hand is admitted too; an ignored device stays refused, and ignored.
    assert server.cli("node", "add", "--aet", "WORKSTATION", "--host", "127.0.0.1", "--port", "104").returncode == 0
    assert server.echoscu(aet="WORKSTATION").returncode == 0
    assert server.echoscu(aet="INTRUDER").returncode != 0
    assert device_cli(server, "ignore", "INTRUDER").returncode == 0
    assert server.echoscu(aet="INTRUDER").returncode != 0
    assert device_row(server, "INTRUDER")["status"] == "ignored"
    assert "INTRUDER" not in device_cli(server, "list").stdout
    assert "INTRUDER " in device_cli(server, "list", "--all").stdout


def test_lenient_aet_recognises_the_device_by_its_address(lightbox_factory) -> None:
    server = lightbox_factory(device_policy="locked")
    assert server.echoscu(aet="US_A").returncode != 0
    assert device_cli(server, "approve", "US_A").returncode == 0
    assert server.echoscu(aet="US_A_RENAMED").returncode != 0  # strict: another AE title is another device
    assert device_cli(server, "edit", "US_A", "--lenient-aet", "yes").returncode == 0
    assert server.echoscu(aet="ANY-SCU").returncode == 0
    assert device_row(server, "ANY-SCU") is None  # recorded against US_A, not as a new device
    assert (device_row(server, "US_A")["associations"], device_row(server, "US_A")["refused"]) == (1, 1)


def test_approve_with_port_makes_a_node_and_echo_tests_the_device(lightbox) -> None:
    assert lightbox.echoscu(aet="SELFTEST").returncode == 0
    assert device_cli(lightbox, "echo", "SELFTEST").returncode == 1  # no port known yet

    approved = device_cli(lightbox, "approve", "SELFTEST", "--port", str(lightbox.dicom_port))
    assert approved.returncode == 0, approved.stderr
    assert f"node SELFTEST host=127.0.0.1 port={lightbox.dicom_port}" in approved.stdout
    assert f"SELFTEST host=127.0.0.1 port={lightbox.dicom_port}" in lightbox.cli("node", "list").stdout

    assert device_cli(lightbox, "rename", "SELFTEST", "Reading room").returncode == 0
    edited = device_cli(lightbox, "edit", "SELFTEST", "--allow", "find,store")
    assert edited.returncode == 0 and "name='Reading room'" in edited.stdout and "allow=find,store" in edited.stdout
    assert "allow=find,store" in lightbox.cli("node", "list").stdout

    echoed = device_cli(lightbox, "echo", "SELFTEST")  # Lightbox answers its own C-ECHO
    assert echoed.returncode == 0 and echoed.stdout.startswith("ok SELFTEST"), echoed.stdout + echoed.stderr
    assert device_cli(lightbox, "edit", "SELFTEST", "--port", str(free_port())).returncode == 0
    failed = device_cli(lightbox, "echo", "SELFTEST")
    assert failed.returncode == 1 and failed.stdout.startswith("FAILED"), failed.stdout

    renamed = device_cli(lightbox, "edit", "SELFTEST", "--aet", "SELFTEST2")
    assert renamed.returncode == 0 and renamed.stdout.startswith("edited SELFTEST2 "), renamed.stderr
    nodes = lightbox.cli("node", "list").stdout
    assert "SELFTEST2 host=127.0.0.1" in nodes and "SELFTEST " not in nodes  # the node followed

    bad = device_cli(lightbox, "edit", "SELFTEST2", "--charset", "KLINGON")
    assert bad.returncode == 2 and "unknown character set" in bad.stderr
    assert device_cli(lightbox, "approve", "NO_SUCH_DEVICE").returncode == 2
    taken = device_cli(lightbox, "edit", "SELFTEST2", "--aet", "LIGHTBOX")  # recorded by the echo, calling as LIGHTBOX
    assert taken.returncode == 2 and "another device is called 'LIGHTBOX'" in taken.stderr


def test_charset_override_decodes_files_that_lie(lightbox, tmp_path: Path) -> None:
    """A unit that labels Cyrillic (ISO_IR 144) text as Latin-1 (ISO_IR 100)."""

    def lying_file(name: str) -> Path:
        ds = make_dataset(patient_id=name, patient_name="Иванов^Иван", SpecificCharacterSet="ISO_IR 144")
        path = write(ds, tmp_path / f"{name}.dcm")
        path.write_bytes(path.read_bytes().replace(b"ISO_IR 144", b"ISO_IR 100"))  # same length
        return path

    assert lightbox.storescu(lying_file("BEFORE"), aet="CYR_US").returncode == 0
    assert device_cli(lightbox, "edit", "CYR_US", "--charset", "ISO_IR 144").returncode == 0
    assert lightbox.storescu(lying_file("AFTER"), aet="CYR_US").returncode == 0
    names = dict(rows(lightbox.data, "SELECT patient_id, name FROM patient"))
    assert names["AFTER"] == "Иванов^Иван"
    assert names["BEFORE"] != "Иванов^Иван"  # decoded as declared, before the override
    assert "charset=ISO_IR 144" in device_cli(lightbox, "list").stdout


def test_recording_a_device_leaves_ingest_commits_durable(tmp_path: Path) -> None:
    """The device record commits without fsync; the connection must be back to FULL after."""
    archive = Archive(tmp_path / "data")
    try:
        assert archive.devices.admit(AssociationSeen("US_1", "10.0.0.7"))
        assert archive.db.execute_sql("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert archive.devices.get("US_1").status == "new"
    finally:
        archive.close()
