"""Encrypted off-site backup against real S3 servers on 127.0.0.1 (moto's, and SeaweedFS,
which checks request signatures).  Every step runs the real `lightbox` commands."""

from __future__ import annotations

import filecmp
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyrage
import pytest
from pydicom.uid import generate_uid

from support.backupbox import PASSPHRASE, Box, numbers
from support.dicomgen import make_dataset, make_study, write
from support.lightbox import LightboxProcess
from support.s3servers import MotoIamS3, MotoS3, SeaweedS3

pytestmark = pytest.mark.slow  # real S3 servers, kill -9 and restores

PATIENTS = ("Smith^John", "Nguyen^Thi^Mai", "Kowalski^Anna")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three patients' studies; one 11.5 MB instance, so that uploads go multipart."""
    root = tmp_path_factory.mktemp("corpus")
    make_study(root / "a", 6, patient_id="PID-A", patient_name=PATIENTS[0], rows=64, columns=64)
    make_study(root / "b", 4, patient_id="PID-B", patient_name=PATIENTS[1], rows=256, columns=256)
    make_study(root / "c", 1, patient_id="PID-C", patient_name=PATIENTS[2], rows=2400, columns=2400)
    return root


def _bucket_keys(client, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _objects(client, bucket: str, prefix: str = "lightbox") -> list[str]:
    return [k for k in _bucket_keys(client, bucket) if k.startswith(f"{prefix}/objects/")]


def _queries() -> list[tuple[str, str, dict]]:
    return [
        ("PATIENT_ROOT", "PATIENT", {"PatientID": "", "PatientName": "", "NumberOfPatientRelatedInstances": ""}),
        (
            "STUDY_ROOT",
            "STUDY",
            {
                "StudyInstanceUID": "",
                "PatientName": "*o*",
                "ModalitiesInStudy": "",
                "NumberOfStudyRelatedInstances": "",
            },
        ),
        ("STUDY_ROOT", "STUDY", {"StudyInstanceUID": "", "PatientID": "PID-B", "StudyDate": "20260101-"}),
        (
            "STUDY_ROOT",
            "SERIES",
            {"StudyInstanceUID": "", "SeriesInstanceUID": "", "Modality": "OT", "NumberOfSeriesRelatedInstances": ""},
        ),
        (
            "STUDY_ROOT",
            "IMAGE",
            {"StudyInstanceUID": "", "SeriesInstanceUID": "", "SOPInstanceUID": "", "InstanceNumber": ""},
        ),
    ]


def _answers(data: Path) -> list[list[str]]:
    """Archive.find results for the queries above (in this process, through the facade)."""
    from appliance.archive import Archive

    archive = Archive(data)
    try:
        return [sorted(json.dumps(m, sort_keys=True) for m in archive.find(*q)) for q in _queries()]
    finally:
        archive.close()


def _storage_files(data: Path) -> list[str]:
    return sorted(str(p.relative_to(data / "storage")) for p in (data / "storage").rglob("*.dcm"))


def test_disaster_drill_restores_byte_identical_archive(moto: MotoS3, corpus: Path, tmp_path: Path) -> None:
    moto.client().create_bucket(Bucket="drill")
    box = Box(tmp_path / "box", moto.endpoint, "drill")
    box.ok("import", corpus)
    sheet = box.init().stdout
    assert (
        "AGE-SECRET-KEY-1" in sheet and "Losing BOTH the passphrase and this recovery sheet loses the backup" in sheet
    )
    assert (box.data / "backup" / "identity.txt").stat().st_mode & 0o777 == 0o600
    assert box.backup()["uploaded"] == 11
    status = box.status()
    assert status["pending_objects"] == 0 and status["objects"] == 11 and status["last_success_at"]
    assert "never_verified" in status["warnings"]
    sample = numbers(box.ok("backup", "verify", "--sample", "1").stdout, ("checked",))["checked"]
    assert 2 <= sample < 12  # the index snapshot and at least one of the 11 objects
    box.ok("backup", "verify")
    assert box.status()["last_verified_restore_at"] and not box.status()["warnings"]

    answers = _answers(box.data)
    assert all(answers), "every query has matches"
    originals = tmp_path / "originals"
    shutil.copytree(box.data / "storage", originals)
    shutil.rmtree(box.data)  # the box is gone

    new_box = tmp_path / "new-box"
    restored = box.restore(new_box)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "restored: 11 files" in restored.stdout
    assert _storage_files(new_box) == sorted(str(p.relative_to(originals)) for p in originals.rglob("*.dcm"))
    for key in _storage_files(new_box):
        assert filecmp.cmp(new_box / "storage" / key, originals / key, shallow=False), key
    assert _answers(new_box) == answers
    verify = Box(new_box, moto.endpoint, "drill").run("verify")
    assert verify.returncode == 0 and "checked: 11  mismatched: 0  missing: 0" in verify.stdout


def test_second_run_uploads_only_what_is_new(moto: MotoS3, corpus: Path, tmp_path: Path) -> None:
    client = moto.client()
    client.create_bucket(Bucket="incremental")
    box = Box(tmp_path / "box", moto.endpoint, "incremental")
    box.ok("import", corpus / "a", corpus / "b")
    box.init()
    assert box.backup()["uploaded"] == 10
    assert box.backup()["uploaded"] == 0
    assert box.ok("backup", "run").stdout.rstrip().endswith("manifest: unchanged")
    before = set(_objects(client, "incremental"))
    make_study(tmp_path / "more", 3, patient_id="PID-D", patient_name="Late^Arrival")
    box.ok("import", tmp_path / "more")
    assert box.status()["pending_objects"] == 3
    assert box.backup()["uploaded"] == 3
    after = set(_objects(client, "incremental"))
    assert before < after and len(after - before) == 3


def test_deleted_instances_stay_in_the_bucket_for_the_retention(moto: MotoS3, tmp_path: Path) -> None:
    """A replaced instance's old bytes are a deletion: recorded, kept, purged only later."""
    client = moto.client()
    client.create_bucket(Bucket="retention")
    box = Box(tmp_path / "box", moto.endpoint, "retention")
    paths = make_study(tmp_path / "study", 2, patient_name="Replace^Me")
    box.ok("import", tmp_path / "study")
    box.init()
    box.backup()
    ds = make_dataset(sop_uid=_sop_uid(paths[0]), study_uid=_study_uid(paths[0]), patient_name="Replace^Me", seed=99)
    write(ds, tmp_path / "again" / "replacement.dcm")
    box.ok("import", tmp_path / "again", env={"LIGHTBOX_DUPLICATE_POLICY": "replace"})
    counts = box.backup()
    assert counts["uploaded"] == 1 and counts["deletions recorded"] == 1 and counts["purged"] == 0
    assert len(_objects(client, "retention")) == 3  # the old copy is kept
    assert box.status()["deleted_retained"] == 1
    box.ok("backup", "verify")  # the retained copy is in the manifest and checked too
    counts = box.backup("--backup-retention-days", "0")
    assert counts["purged"] == 1 and len(_objects(client, "retention")) == 2
    assert box.status()["deleted_retained"] == 0
    box.ok("backup", "verify")


def test_key_without_delete_right_backs_up_and_keeps_deletions(tmp_path: Path) -> None:
    """IAM enforced: the key may put, get and list, not delete.  Backups work; a purge after
    the retention is refused, counted, and the object stays.  (Verify and restore are not run
    here: moto's IAM mode rejects the signature of any listing whose prefix holds a "/";
    SeaweedFS checks signatures in the round trip below.)"""
    server = MotoIamS3("no-delete").start()
    try:
        box = Box(tmp_path / "box", server.endpoint, "no-delete", keys=(server.access_key, server.secret_key))
        paths = make_study(tmp_path / "study", 2, patient_name="Keep^Me")
        box.ok("import", tmp_path / "study")
        box.init()
        assert box.backup()["uploaded"] == 2
        ds = make_dataset(sop_uid=_sop_uid(paths[0]), study_uid=_study_uid(paths[0]), patient_name="Keep^Me", seed=7)
        write(ds, tmp_path / "again" / "replacement.dcm")
        box.ok("import", tmp_path / "again", env={"LIGHTBOX_DUPLICATE_POLICY": "replace"})
        run = box.ok("backup", "run", "--backup-retention-days", "0").stdout
        assert "uploaded: 1 " in run and "purged: 0" in run and "kept by the bucket: 1" in run
        client = server.client()
        assert len(_objects(client, "no-delete")) == 3  # nothing was deleted
        status = box.status()
        assert status["deleted_retained"] == 0 and status["objects"] == 2 and not status["pending_objects"]
        assert "failing" not in status["warnings"]
    finally:
        server.stop()


def _sop_uid(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _study_uid(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def test_kill9_mid_run_resumes_without_duplicates_or_gaps(moto: MotoS3, tmp_path: Path) -> None:
    client = moto.client()
    client.create_bucket(Bucket="interrupted")
    client.put_bucket_versioning(Bucket="interrupted", VersioningConfiguration={"Status": "Enabled"})
    box = Box(tmp_path / "box", moto.endpoint, "interrupted")
    for i in range(4):
        make_study(tmp_path / "corpus" / str(i), 5, patient_id=f"PID-{i}", rows=256, columns=256)  # 128 KiB each
    box.ok("import", tmp_path / "corpus")
    box.init()
    slow = subprocess.Popen(
        [sys.executable, "-m", "appliance", "backup", "run", "--data", str(box.data),
         "--backup-bandwidth-kbps", "256", "--backup-concurrency", "2"],
        env=box.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(_objects(client, "interrupted")) < 3 and time.monotonic() < deadline and slow.poll() is None:
        time.sleep(0.05)
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    interrupted_with = len(_objects(client, "interrupted"))
    assert 3 <= interrupted_with < 20, "killed in the middle of the run"
    recorded = _recorded_before(box, interrupted_with)
    counts = box.backup()
    assert counts["uploaded"] + counts["found uploaded"] == 20 - recorded
    keys = _objects(client, "interrupted")
    assert len(keys) == 20  # no gaps
    versions = client.list_object_versions(Bucket="interrupted", Prefix="lightbox/objects/")["Versions"]
    assert sorted(v["Key"] for v in versions) == keys  # no duplicates: each object written once
    assert box.status()["pending_objects"] == 0
    box.ok("backup", "verify")


def _recorded_before(box: Box, uploaded: int) -> int:
    """Objects the killed run had recorded as uploaded (the rest it sent but never recorded)."""
    import sqlite3

    db = sqlite3.connect(box.data / "backup" / "state.sqlite")
    try:
        recorded = db.execute("SELECT COUNT(*) FROM object").fetchone()[0]
    finally:
        db.close()
    assert recorded <= uploaded
    return recorded


def test_damage_in_the_bucket_is_named_and_fails_verify(moto: MotoS3, corpus: Path, tmp_path: Path) -> None:
    client = moto.client()
    client.create_bucket(Bucket="damaged")
    box = Box(tmp_path / "box", moto.endpoint, "damaged")
    box.ok("import", corpus / "a")
    box.init()
    box.backup()
    flipped, missing = _objects(client, "damaged")[:2]
    body = bytearray(client.get_object(Bucket="damaged", Key=flipped)["Body"].read())
    body[len(body) // 2] ^= 0x01
    client.put_object(Bucket="damaged", Key=flipped, Body=bytes(body))
    client.delete_object(Bucket="damaged", Key=missing)

    verify = box.run("backup", "verify")
    assert verify.returncode == 1
    flipped_name, missing_name = flipped.split("/", 1)[1], missing.split("/", 1)[1]
    assert f"CORRUPT {flipped_name}: cannot be decrypted" in verify.stdout
    assert f"MISSING {missing_name}: not in the bucket" in verify.stdout
    assert "problems: 2" in verify.stdout
    assert "verification_failed" in box.status()["warnings"]

    restore = box.restore(tmp_path / "new-box")
    assert restore.returncode == 1
    assert f"CORRUPT {flipped_name}" in restore.stdout and f"MISSING {missing_name}" in restore.stdout
    assert "restored: 4 files" in restore.stdout
    assert Box(tmp_path / "new-box", moto.endpoint, "damaged").run("verify").returncode == 0  # what came back is sound

    wrong = tmp_path / "wrong-passphrase"
    wrong.write_text("not the passphrase at all\n")
    refused = box.restore(tmp_path / "third-box", "--passphrase-file", wrong)
    assert refused.returncode == 1 and "wrong passphrase" in refused.stderr
    assert not (tmp_path / "third-box").exists()
    other_key = tmp_path / "other-key"
    from appliance.backup.crypto import generate_identity

    other_key.write_text(str(generate_identity()))
    refused = box.restore(tmp_path / "third-box", "--recovery-key-file", other_key)
    assert refused.returncode == 1 and "not this backup's key" in refused.stderr


def test_restore_with_the_recovery_key_alone(moto: MotoS3, corpus: Path, tmp_path: Path) -> None:
    moto.client().create_bucket(Bucket="sheet")
    box = Box(tmp_path / "box", moto.endpoint, "sheet")
    box.ok("import", corpus / "b")
    sheet = box.init().stdout
    key = next(line.strip() for line in sheet.splitlines() if line.strip().startswith("AGE-SECRET-KEY-1"))
    assert "▄" in sheet or "█" in sheet  # the QR code
    box.backup()
    key_file = tmp_path / "key"
    key_file.write_text(key)
    restored = box.restore(tmp_path / "new-box", "--recovery-key-file", key_file)
    assert restored.returncode == 0 and "restored: 4 files" in restored.stdout, restored.stdout + restored.stderr


def test_a_backup_made_before_the_argon2_wrap_restores_with_its_passphrase(
    moto: MotoS3, corpus: Path, tmp_path: Path
) -> None:
    """Format 1 buckets (identity.age wrapped by age's scrypt recipient) restore as they did."""
    client = moto.client()
    client.create_bucket(Bucket="format1")
    box = Box(tmp_path / "box", moto.endpoint, "format1")
    box.ok("import", corpus / "b")
    box.init()
    box.backup()
    identity = (box.data / "backup" / "identity.txt").read_text().strip()
    client.put_object(
        Bucket="format1", Key="lightbox/identity.age", Body=pyrage.passphrase.encrypt(identity.encode(), PASSPHRASE)
    )
    marker = json.loads(client.get_object(Bucket="format1", Key="lightbox/lightbox-backup.json")["Body"].read())
    assert marker["version"] == 2
    client.put_object(Bucket="format1", Key="lightbox/lightbox-backup.json", Body=json.dumps({**marker, "version": 1}))

    restored = box.restore(tmp_path / "new-box")
    assert restored.returncode == 0 and "restored: 4 files" in restored.stdout, restored.stdout + restored.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all\n")
    refused = box.restore(tmp_path / "third-box", "--passphrase-file", wrong)
    assert refused.returncode == 1 and "wrong passphrase" in refused.stderr

    client.put_object(Bucket="format1", Key="lightbox/lightbox-backup.json", Body=json.dumps({**marker, "version": 3}))
    refused = box.restore(tmp_path / "fourth-box")
    assert refused.returncode == 1 and "made by a newer Lightbox" in refused.stderr


def test_backup_init_and_a_passphrase_restore_fit_a_1_gb_box(moto: MotoS3, corpus: Path, tmp_path: Path) -> None:
    """Each stays under the 256 MB a command may take (age's scrypt took ~1 GB for a moment)."""
    moto.client().create_bucket(Bucket="small-box")
    box = Box(tmp_path / "box", moto.endpoint, "small-box")
    box.ok("import", corpus / "a")
    init = box.measured(
        "backup", "init", "--bucket", "small-box", "--endpoint", moto.endpoint, "--passphrase-file", box.passphrase_file
    )
    box.backup()
    restore = box.measured(
        "restore", "--from-bucket", "small-box", "--endpoint", moto.endpoint, "--to", tmp_path / "new-box",
        "--passphrase-file", box.passphrase_file, data=False,
    )  # fmt: skip
    assert init.returncode == 0 and restore.returncode == 0
    assert (tmp_path / "new-box" / "index.sqlite").exists()
    print(f"peak RSS: backup init {init.peak_hwm / 2**20:.0f} MiB, restore {restore.peak_hwm / 2**20:.0f} MiB")
    assert init.peak_hwm < 256 << 20 and restore.peak_hwm < 256 << 20


def test_bucket_never_holds_plaintext(moto: MotoS3, corpus: Path, tmp_path: Path) -> None:
    client = moto.client()
    client.create_bucket(Bucket="scanned")
    box = Box(tmp_path / "box", moto.endpoint, "scanned")
    box.ok("import", corpus)
    box.init()
    box.backup()
    secrets: set[bytes] = {b"DICM", *(p.encode() for p in PATIENTS), *(p.split("^")[0].encode() for p in PATIENTS)}
    pieces: list[bytes] = []
    for path in sorted((box.data / "storage").rglob("*.dcm")):
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        secrets |= {
            str(ds.SOPInstanceUID).encode(),
            str(ds.StudyInstanceUID).encode(),
            str(ds.SeriesInstanceUID).encode(),
        }
        data = path.read_bytes()
        pieces += [data[i : i + 32] for i in range(132, len(data) - 32, max(32, len(data) // 16))]
    keys = _bucket_keys(client, "scanned")
    assert len(keys) == 11 + 4  # objects, index snapshot, manifest, identity, marker
    for key in keys:
        body = client.get_object(Bucket="scanned", Key=key)["Body"].read()
        for secret in secrets:
            assert secret not in body and secret.decode() not in key, (key, secret)
        for piece in pieces:
            assert piece not in body, key
        if key.endswith("identity.age"):  # wrap format 2: its header and Argon2id parameters, then age
            magic, params, body = body.split(b"\n", 2)
            assert magic == b"lightbox-identity-wrap/2" and json.loads(params)["kdf"] == "argon2id"
        if not key.endswith("lightbox-backup.json"):
            assert body.startswith(b"age-encryption.org/v1\n"), key


def test_outage_fails_clearly_and_the_next_run_catches_up(moto: MotoS3, corpus: Path, tmp_path: Path) -> None:
    moto.client().create_bucket(Bucket="outage")
    box = Box(tmp_path / "box", moto.endpoint, "outage")
    box.ok("import", corpus / "a")
    box.init()
    moto.stop()
    try:
        failed = box.run("backup", "run", "--backup-concurrency", "1")
    finally:
        moto.start()
    assert failed.returncode == 1 and f"cannot reach {moto.endpoint}" in failed.stderr
    status = box.status()
    assert "failing" in status["warnings"] and status["pending_objects"] == 6
    assert box.backup()["uploaded"] == 6
    assert "failing" not in box.status()["warnings"]


def test_object_lock_bucket_needs_checksums_and_then_works(moto: MotoS3, corpus: Path, tmp_path: Path) -> None:
    client = moto.client()
    client.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    client.put_object_lock_configuration(
        Bucket="locked",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    box = Box(tmp_path / "box", moto.endpoint, "locked")
    box.ok("import", corpus / "b", corpus / "c")
    refused = box.run(
        "backup", "init", "--bucket", "locked", "--endpoint", moto.endpoint, "--passphrase-file", box.passphrase_file
    )
    assert refused.returncode == 1 and "backup_checksums = when_supported" in refused.stderr
    box.init("--backup-checksums", "when_supported")
    assert box.backup("--backup-checksums", "when_supported")["uploaded"] == 5  # the 11.5 MB one in parts
    box.ok("backup", "verify", "--backup-checksums", "when_supported")


def test_service_backs_up_continuously_and_verifies_on_schedule(moto: MotoS3, corpus: Path, tmp_path: Path) -> None:
    """`lightbox serve` runs the backup loop: a study sent with DCMTK storescu reaches the
    bucket once the archive is quiet, and the scheduled sample verification follows."""
    client = moto.client()
    client.create_bucket(Bucket="service")
    box = Box(tmp_path / "data", moto.endpoint, "service")
    box.data.mkdir()
    box.init()
    server = LightboxProcess(
        box.data, backup_schedule="continuous", backup_delay=1, backup_verify_days=0.00001, backup_verify_sample_pct=50
    )
    server.start()
    try:
        sent = server.storescu(*sorted((corpus / "a").glob("*.dcm")))
        assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = box.status()
            if status.get("last_verified_restore_at") and status["objects"] == 6:
                break
            time.sleep(0.5)
        assert status["objects"] == 6 and status["pending_objects"] == 0, status
        assert status["last_verified_restore_at"], status
        assert len(_objects(client, "service")) == 6
    finally:
        server.stop()


def test_study_backup_verified_only_after_verification(moto: MotoS3, tmp_path: Path) -> None:
    from appliance.archive import Archive
    from appliance.backup.state import BackupState
    from appliance.backup.status import study_backup_verified

    moto.client().create_bucket(Bucket="eviction")
    box = Box(tmp_path / "box", moto.endpoint, "eviction")
    study_uid = generate_uid()
    make_study(tmp_path / "s", 2, study_uid=study_uid, patient_name="Evict^Me")
    box.ok("import", tmp_path / "s")
    box.init()

    def verified() -> bool:
        archive, state = Archive(box.data), BackupState(box.data)
        try:
            return study_backup_verified(archive, state, study_uid)
        finally:
            archive.close()
            state.close()

    box.backup()
    assert not verified()  # uploaded, not yet proven
    box.ok("backup", "verify")
    assert verified()
    make_study(tmp_path / "s2", 1, study_uid=study_uid, patient_name="Evict^Me")
    box.ok("import", tmp_path / "s2")
    assert not verified()  # a new instance is not backed up yet


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> SeaweedS3:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed")).start()
    yield server
    server.stop()


def test_signature_checking_server_round_trip(seaweed: SeaweedS3, corpus: Path, tmp_path: Path) -> None:
    seaweed.client().create_bucket(Bucket="signed")
    box = Box(tmp_path / "box", seaweed.endpoint, "signed")
    box.ok("import", corpus)
    bad = box.run(
        "backup", "init", "--bucket", "signed", "--endpoint", seaweed.endpoint,
        "--passphrase-file", box.passphrase_file, "--secret-access-key", "not-the-secret",
    )  # fmt: skip
    assert bad.returncode == 1 and "refused the credentials" in bad.stderr
    box.init()
    assert box.backup()["uploaded"] == 11
    box.ok("backup", "verify")
    restored = box.restore(tmp_path / "new-box")
    assert restored.returncode == 0 and "restored: 11 files" in restored.stdout, restored.stdout + restored.stderr
    for key in _storage_files(box.data):
        assert filecmp.cmp(box.data / "storage" / key, tmp_path / "new-box" / "storage" / key, shallow=False)


def test_a_run_that_died_before_its_manifest_is_completed_by_the_next(
    moto: MotoS3, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All uploads done and the cursor at the end, then a crash before the manifest: the next
    run, with nothing new in the change log, must still write the manifest."""
    from appliance.archive import Archive
    from appliance.backup import sync
    from appliance.backup.state import BackupState

    client = moto.client()
    client.create_bucket(Bucket="no-manifest")
    box = Box(tmp_path / "box", moto.endpoint, "no-manifest")
    box.ok("import", corpus / "a")
    box.init()
    monkeypatch.setattr(sync._Run, "_write_manifest", lambda *a: (_ for _ in ()).throw(OSError("power cut")))
    archive, state = Archive(box.data), BackupState(box.data)
    try:
        assert sync.run_backup(archive, state, sync.BackupOptions()).error == "power cut"
    finally:
        archive.close()
        state.close()
    assert len(_objects(client, "no-manifest")) == 6
    assert not [k for k in _bucket_keys(client, "no-manifest") if "/manifests/" in k]
    monkeypatch.undo()
    counts = box.backup()
    assert counts["uploaded"] == 0
    assert [k for k in _bucket_keys(client, "no-manifest") if "/manifests/" in k]
    verify = box.ok("backup", "verify")
    assert "checked: 7 objects" in verify.stdout  # the six instances and the index snapshot


def test_a_damaged_stored_file_is_left_out_and_named(moto: MotoS3, corpus: Path, tmp_path: Path) -> None:
    """A file that no longer matches its hash is not backed up as if it were sound: the run
    backs up the rest, fails, and says to run `lightbox verify`."""
    client = moto.client()
    client.create_bucket(Bucket="damaged-local")
    box = Box(tmp_path / "box", moto.endpoint, "damaged-local")
    box.ok("import", corpus / "a")
    box.init()
    victim = sorted((box.data / "storage").rglob("*.dcm"))[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    run = box.run("backup", "run")
    assert run.returncode == 1 and "1 stored file(s) no longer match their hash" in run.stderr, run.stderr
    assert "uploaded: 5 " in run.stdout
    status = box.status()
    assert status["objects"] == 5 and status["damaged_files"] == 1
    assert {"failing", "damaged_files"} <= set(status["warnings"])
    assert box.ok("backup", "verify").stdout.count("problems: 0") == 1  # the manifest holds the five
    assert len(_objects(client, "damaged-local")) == 5  # the damaged bytes never reached the bucket
    again = box.run("backup", "run")
    assert again.returncode == 1 and "1 stored file(s)" in again.stderr  # still damaged: still said
    victim.write_bytes(bytes(data[:-1]) + bytes([data[-1] ^ 0xFF]))  # repaired
    assert box.backup()["uploaded"] == 1
    status = box.status()
    assert status["objects"] == 6 and status["damaged_files"] == 0 and "damaged_files" not in status["warnings"]
    assert "checked: 7 objects" in box.ok("backup", "verify").stdout  # in the new manifest
