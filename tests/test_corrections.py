"""Deleting a study, a series or an instance, fixing a patient's identity and merging two
patients: through the real `lightbox` commands against a served archive, checked with DCMTK
(findscu, getscu), the index, the stored files, the audit trail, and a backup and restore
through a real S3 server on 127.0.0.1."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from appliance.archive import Archive
from support.backupbox import Box
from support.dicomgen import make_study
from support.qr import findscu
from support.s3servers import MotoS3
from support.scu import rows, stored_files
from support.tools import dcmtk


def uid_of(path: Path, keyword: str) -> str:
    return str(dcmread(path, stop_before_pixels=True).get(keyword))


def add_nodes(server) -> None:
    for aet, allow in (("FINDSCU", "find"), ("GETSCU", "get")):
        result = server.cli("node", "add", "--aet", aet, "--host", "127.0.0.1", "--port", "1", "--allow", allow)
        assert result.returncode == 0, result.stderr


def studies_of(server, tmp_path: Path, patient_id: str) -> list[str]:
    found = findscu(server, tmp_path / f"find-{patient_id}-{len(list(tmp_path.iterdir()))}", "-S",
                    "QueryRetrieveLevel=STUDY", f"PatientID={patient_id}", "StudyInstanceUID")  # fmt: skip
    return sorted(str(ds.StudyInstanceUID) for ds in found)


def get_study(server, out: Path, study_uid: str) -> list:
    out.mkdir(parents=True)
    result = subprocess.run(
        [dcmtk("getscu"), "-aet", "GETSCU", "-aec", server.aet, "-od", str(out), "-k", "QueryRetrieveLevel=STUDY",
         "-k", f"StudyInstanceUID={study_uid}", "127.0.0.1", str(server.dicom_port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return [dcmread(p) for p in sorted(out.iterdir())]


def audit(server) -> list[tuple]:
    return rows(server.data, "SELECT event, action, user_name, study_uid, detail FROM auditevent ORDER BY id")


@pytest.mark.slow  # a restart and `lightbox verify`
def test_delete_study_series_and_instance_with_a_confirmation_naming_the_patient(lightbox, tmp_path):
    keep = make_study(tmp_path / "keep", 2, patient_id="KEEP-1", patient_name="Keep^Me")
    doomed = make_study(tmp_path / "doomed", 2, patient_id="WRONG-1", patient_name="Wrong^Patient")
    two_series = make_study(tmp_path / "two", 3, patient_id="TWO-1")
    more = make_study(tmp_path / "two-b", 2, patient_id="TWO-1", study_uid=uid_of(two_series[0], "StudyInstanceUID"))
    assert lightbox.storescu(*keep, *doomed, *two_series, *more).returncode == 0
    add_nodes(lightbox)
    assert lightbox.count() == 9 and len(stored_files(lightbox.data)) == 9
    doomed_study = uid_of(doomed[0], "StudyInstanceUID")

    wrong = lightbox.cli("delete", "study", doomed_study, "--confirm", "KEEP-1")
    assert wrong.returncode == 1 and "type the Patient ID" in wrong.stderr and lightbox.count() == 9
    deleted = lightbox.cli("delete", "study", doomed_study, "--confirm", "WRONG-1")
    assert deleted.returncode == 0, deleted.stderr
    assert "of Wrong^Patient (Patient ID WRONG-1): 1 series, 2 instances" in deleted.stdout
    assert studies_of(lightbox, tmp_path, "WRONG-1") == [] and lightbox.count() == 7

    series_uid = uid_of(more[0], "SeriesInstanceUID")
    assert lightbox.cli("delete", "series", series_uid, "--confirm", "TWO-1").returncode == 0
    assert (
        lightbox.cli("delete", "instance", uid_of(two_series[0], "SOPInstanceUID"), "--confirm", "TWO-1").returncode
        == 0
    )
    assert lightbox.count() == 4 and len(stored_files(lightbox.data)) == 4
    assert rows(lightbox.data, "SELECT num_series, num_instances FROM study WHERE study_uid = ?",
                uid_of(two_series[0], "StudyInstanceUID")) == [(1, 2)]  # fmt: skip
    assert rows(lightbox.data, "SELECT COUNT(*) FROM change WHERE kind = 'instance_deleted'") == [(5,)]
    events = [e for e in audit(lightbox) if e[1] == "D"]
    assert len(events) == 3 and all(e[0] == "DICOMInstancesAccessed" and "(command line)" in e[2] for e in events)
    assert "Wrong^Patient" in events[0][4] and events[0][3] == doomed_study
    assert lightbox.cli("delete", "study", doomed_study, "--confirm", "WRONG-1").returncode == 1  # gone

    # Nothing comes back at a restart (no orphan files), and the files match the index.
    lightbox.stop()
    lightbox.start()
    assert lightbox.count() == 4
    assert lightbox.cli("verify").returncode == 0


def test_a_deletion_interrupted_after_its_commit_is_finished_at_start_up(tmp_path):
    """The rows go first and the files after: a crash in between must not let the deleted
    instances come back as orphan files (indexed again) at the next start."""
    files = make_study(tmp_path / "study", 3, patient_id="CRASH-1")
    archive = Archive(tmp_path / "data")
    archive.import_paths([tmp_path / "study"])
    archive.storage.remove_many = lambda keys: (_ for _ in ()).throw(OSError("power cut"))  # type: ignore[method-assign]
    with pytest.raises(OSError):
        archive.corrections.delete("study", uid_of(files[0], "StudyInstanceUID"), "CRASH-1", "test")
    assert len(stored_files(tmp_path / "data")) == 3  # the files outlived the commit
    archive.close()

    reopened = Archive(tmp_path / "data")
    report = reopened.reconcile()
    assert report.indexed == [] and reopened.counts()["instances"] == 0
    assert stored_files(tmp_path / "data") == []
    reopened.close()


@pytest.mark.slow  # `lightbox rebuild-index` and a restart
def test_fix_identity_rewrites_every_file_under_the_same_uids_and_keeps_the_originals(lightbox, tmp_path):
    plain = make_study(
        tmp_path / "study", 2, patient_id="TYPO-1", patient_name="Mueler^Hans", PatientBirthDate="19700101"
    )
    study_uid = uid_of(plain[0], "StudyInstanceUID")
    j2k = dcmread(get_testdata_file("MR_small_jp2klossless.dcm"))
    j2k.StudyInstanceUID, j2k.PatientID, j2k.PatientName, j2k.PatientBirthDate = (
        study_uid,
        "TYPO-1",
        "Mueler^Hans",
        "19700101",
    )
    j2k.save_as(tmp_path / "study" / "j2k.dcm")
    sent = [*plain, tmp_path / "study" / "j2k.dcm"]
    assert lightbox.cli("import", str(tmp_path / "study")).returncode == 0
    add_nodes(lightbox)
    originals = {p.name for p in stored_files(lightbox.data)}

    edited = lightbox.cli(
        "patient", "edit", study_uid, "--name", "Müller^Hans", "--id", "PID-7", "--birth-date", "19700102"
    )
    assert edited.returncode == 0, edited.stderr
    assert "3 instances rewritten" in edited.stdout
    assert studies_of(lightbox, tmp_path, "PID-7") == [study_uid] and studies_of(lightbox, tmp_path, "TYPO-1") == []

    received = {str(ds.SOPInstanceUID): ds for ds in get_study(lightbox, tmp_path / "got", study_uid)}
    for path in sent:
        before = dcmread(path)
        after = received[str(before.SOPInstanceUID)]  # every instance, under its own UID
        assert (str(after.PatientName), after.PatientID, after.PatientBirthDate) == ("Müller^Hans", "PID-7", "19700102")
        assert (after.StudyInstanceUID, after.SeriesInstanceUID) == (before.StudyInstanceUID, before.SeriesInstanceUID)
        stored_syntax = rows(
            lightbox.data, "SELECT transfer_syntax FROM instance WHERE sop_uid = ?", str(before.SOPInstanceUID)
        )
        assert stored_syntax == [(str(before.file_meta.TransferSyntaxUID),)]  # pixels untouched: J2K stays J2K
        assert np.array_equal(after.pixel_array, before.pixel_array)
        [change] = after.OriginalAttributesSequence
        old = change.ModifiedAttributesSequence[0]
        assert (str(old.PatientName), old.PatientID, old.PatientBirthDate) == ("Mueler^Hans", "TYPO-1", "19700101")
        assert change.ModifyingSystem == "LIGHTBOX" and change.ReasonForTheAttributeModification == "CORRECT"

    # The originals stay on disk, not indexed, until a backup has them; verify is clean.
    on_disk = {p.name for p in stored_files(lightbox.data)}
    assert originals < on_disk and len(on_disk) == 6
    assert rows(lightbox.data, "SELECT COUNT(*) FROM superseded") == [(3,)]
    assert lightbox.cli("verify").returncode == 0
    [event] = [e for e in audit(lightbox) if e[0] == "PatientRecord"]
    assert event[1] == "U" and "'Mueler^Hans' -> 'Müller^Hans'" in event[4] and event[3] == study_uid

    # Storage is the source of truth: a rebuilt index holds the corrected identity.
    lightbox.stop()
    rebuilt = lightbox.cli("rebuild-index")
    assert rebuilt.returncode == 0 and "unindexable: 0" in rebuilt.stdout, rebuilt.stdout
    lightbox.start()
    assert studies_of(lightbox, tmp_path, "PID-7") == [study_uid] and lightbox.count() == 3


def test_merge_resolves_a_flagged_identity_conflict(lightbox, tmp_path):
    right = make_study(tmp_path / "right", 2, patient_id="PID-9", patient_name="Doe^Jane", PatientBirthDate="19800101")
    typo = make_study(tmp_path / "typo", 1, patient_id="PID-9", patient_name="Deo^Jane", PatientBirthDate="19800101")
    assert lightbox.storescu(*right, *typo).returncode == 0
    assert rows(lightbox.data, "SELECT name, identity_conflict FROM patient ORDER BY id") == [
        ("Doe^Jane", 1),
        ("Deo^Jane", 1),
    ]
    merged = lightbox.cli("patient", "merge", uid_of(typo[0], "StudyInstanceUID"), uid_of(right[0], "StudyInstanceUID"))
    assert merged.returncode == 0, merged.stderr
    assert rows(lightbox.data, "SELECT name, identity_conflict, num_studies, num_instances FROM patient") == [
        ("Doe^Jane", 0, 2, 3)
    ]
    again = lightbox.cli("patient", "merge", uid_of(typo[0], "StudyInstanceUID"), uid_of(right[0], "StudyInstanceUID"))
    assert again.returncode == 1 and "same patient" in again.stderr


@pytest.mark.slow
def test_edited_originals_are_backed_up_then_released_and_a_restore_has_the_corrected_files(tmp_path):
    server = MotoS3().start()
    try:
        server.client().create_bucket(Bucket="edits")
        box = Box(tmp_path / "box", server.endpoint, "edits")
        files = make_study(tmp_path / "study", 2, patient_id="OLD-1", patient_name="Old^Name")
        study_uid = uid_of(files[0], "StudyInstanceUID")
        box.ok("import", tmp_path / "study")
        box.init()
        edited = box.ok("patient", "edit", study_uid, "--name", "New^Name", "--id", "NEW-1")  # before any backup ran
        assert "2 instances rewritten" in edited.stdout and len(stored_files(box.data)) == 4
        run = box.backup()
        assert run["uploaded"] == 4  # the originals too, then recorded as deleted (kept for the retention)
        assert stored_files(box.data) and len(stored_files(box.data)) == 2  # originals released once backed up
        assert rows(box.data, "SELECT COUNT(*) FROM superseded") == [(0,)]
        status = box.status()
        assert status["objects"] == 2 and status["deleted_retained"] == 2

        restored = tmp_path / "restored"
        assert box.restore(restored).returncode == 0
        names = {str(dcmread(p).PatientName) for p in stored_files(restored)}
        assert names == {"New^Name"} and len(stored_files(restored)) == 2
    finally:
        server.stop()
