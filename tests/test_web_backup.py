"""The Backup page and its JSON twin, over HTTP and in Chromium, against a real `lightbox serve`
and moto's S3 server on 127.0.0.1: set-up with the recovery sheet shown once, warnings, the
schedule, "Back up now" and "Verify a sample now" run by the service's backup loop, whose calls
to the bucket go to a child process that boto3 never leaves."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import segno

from support.browser import ARTIFACTS, expect, log_in, new_page, shot
from support.lightbox import running
from support.procmem import holds
from support.s3servers import ACCESS_KEY, SECRET_KEY, MotoS3
from support.web import ADMIN, ADMIN_PASSWORD, Client, add_user, first_admin, send_study

pytestmark = pytest.mark.slow  # a browser and real S3 servers

PASSPHRASE = "a long backup passphrase"
VIEWER, VIEWER_PASSWORD = "frontdesk", "front desk password"
KEY = re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]+")


def setup_form(moto: MotoS3, bucket: str) -> dict[str, str]:
    return {
        "endpoint": moto.endpoint, "bucket": bucket, "prefix": "clinic", "region": "us-east-1",
        "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY, "addressing": "path",
        "passphrase": PASSPHRASE, "passphrase2": PASSPHRASE,
        "backup_schedule": "manual", "backup_time": "02:00", "backup_delay": "300",
    }  # fmt: skip


def wait_idle(client: Client, done: callable, timeout: float = 30) -> dict:
    """Poll the JSON twin until the loop is idle and ``done(status)`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.get("/api/backup").json()
        activity = info["activity"]
        if not activity["running"] and not activity["asked"] and done(info["status"]):
            return info
        time.sleep(0.3)
    raise AssertionError(f"the backup loop did not get there: {info}")


def warnings(client: Client) -> set[str]:
    return {w["code"] for w in client.get("/api/backup").json()["warnings"]}


def test_backup_setup_warnings_and_runs_over_http(tmp_path_factory, moto):
    moto.client().create_bucket(Bucket="http-backup")
    with running(
        tmp_path_factory.mktemp("webbackup") / "data", dicom_workers=0, backup_verify_sample_pct=100
    ) as server:
        admin = first_admin(server)
        viewer = add_user(admin, VIEWER, VIEWER_PASSWORD)
        answers: list[str] = []

        def post(path: str, **data: str):
            answer = admin.api_post(path, **data)
            answers.append(answer.text)
            return answer

        # Never configured: said plainly; the admin nav links the page; a viewer is kept out.
        info = admin.get("/api/backup").json()
        assert info["status"]["configured"] is False and [w["code"] for w in info["warnings"]] == ["not_configured"]
        page = admin.get("/admin/backup").text
        assert "Backup is not set up" in page and 'href="/admin/backup"' in admin.get("/admin").text
        assert viewer.get("/admin/backup").status_code == 403 and viewer.get("/api/backup").status_code == 403
        assert viewer.api_post("/api/backup/setup", **setup_form(moto, "http-backup")).status_code == 403

        # State-changing requests need the CSRF token and our Origin.
        form = setup_form(moto, "http-backup")
        for path in (
            "/api/backup/setup",
            "/api/backup/run",
            "/api/backup/verify",
            "/api/backup/schedule",
            "/api/backup/sheet-confirmed",
        ):
            assert admin.post(path, data=form).status_code == 403, path
            assert admin.post(path, data=form, headers={"X-CSRF-Token": "forged"}).status_code == 403, path
            evil = {"X-CSRF-Token": admin.csrf(), "Origin": "http://evil.example"}
            assert admin.post(path, data=form, headers=evil).status_code == 403, path

        # Bad input: a clear 400, nothing set up.
        for changes, message in (
            ({"passphrase2": "another passphrase"}, "differ"),
            ({"passphrase": "short", "passphrase2": "short"}, "at least 12"),
            ({"bucket": "no-such-bucket"}, "no bucket 'no-such-bucket'"),
            ({"backup_time": "25:00"}, "HH:MM"),
            ({"backup_schedule": "hourly"}, "expected one of"),
            ({"endpoint": "javascript:alert(1)"}, "must be a URL"),
        ):
            answer = post("/api/backup/setup", **{**form, **changes})
            assert answer.status_code == 400 and message in answer.json()["error"], (changes, answer.text)
        assert post("/api/backup/run").status_code == 409  # not set up yet
        assert admin.get("/api/backup").json()["status"]["configured"] is False

        # Set up: the answer holds the recovery key and its QR code, once.
        answer = post("/api/backup/setup", **form)
        assert answer.status_code == 200, answer.text
        sheet = answer.json()["recovery_sheet"]
        secret = sheet["secret_key"]
        assert KEY.fullmatch(secret) and sheet["public_key"].startswith("age1")
        assert sheet["qr"] == segno.make(secret, error="m").svg_data_uri(scale=5, border=4)  # the QR code is of the key
        assert sheet["target"] == f"s3://http-backup/clinic at {moto.endpoint}"
        assert (server.data / "backup" / "identity.txt").read_text().strip() == secret
        assert post("/api/backup/setup", **form).status_code == 400  # the key is never replaced (or shown) again

        info = admin.get("/api/backup").json()
        assert info["status"]["configured"] and info["status"]["target"]["path_style"] is True
        assert {"never_succeeded", "never_verified", "sheet_unconfirmed"} <= warnings(admin)
        assert "Set up the backup" not in admin.get("/admin/backup").text
        assert post("/api/backup/sheet-confirmed").status_code == 400  # the box was not ticked
        assert post("/api/backup/sheet-confirmed", stored="yes").status_code == 200
        assert "sheet_unconfirmed" not in warnings(admin)

        # The schedule.
        assert post("/api/backup/schedule", backup_schedule="nightly", backup_time="3:30").status_code == 400
        assert post("/api/backup/schedule", backup_schedule="nightly", backup_time="03:30").status_code == 200
        info = admin.get("/api/backup").json()
        assert info["status"]["schedule"] == "nightly" and info["settings"]["backup_time"] == "03:30"
        assert "nightly at 03:30" in admin.get("/admin/backup").text
        assert post("/api/backup/schedule", backup_schedule="manual").status_code == 200  # no run of its own below

        # Failing: the bucket went away; the page names the error.  Back, the next run succeeds.
        s3 = moto.client()
        kept = {
            k: s3.get_object(Bucket="http-backup", Key=k)["Body"].read()
            for k in ("clinic/identity.age", "clinic/lightbox-backup.json")
        }
        for key in kept:
            s3.delete_object(Bucket="http-backup", Key=key)
        s3.delete_bucket(Bucket="http-backup")
        send_study(server, tmp_path_factory.mktemp("study"), count=2)
        assert post("/api/backup/run").status_code == 202
        wait_idle(admin, lambda st: st["last_run"] is not None)
        assert "failing" in warnings(admin)
        page = admin.get("/admin/backup").text
        assert "The last backup run failed" in page and "no bucket &#039;http-backup&#039;" in page
        s3.create_bucket(Bucket="http-backup")
        for key, body in kept.items():
            s3.put_object(Bucket="http-backup", Key=key, Body=body)
        assert post("/api/backup/run").status_code == 202
        status = wait_idle(admin, lambda st: st["last_success_at"] is not None)["status"]
        assert status["pending_objects"] == 0 and status["objects"] == 2
        assert {"failing", "never_succeeded", "stale"}.isdisjoint(warnings(admin))

        # Verify a sample now: the last verified restore date appears.
        assert post("/api/backup/verify").status_code == 202
        status = wait_idle(admin, lambda st: st["last_verified_restore_at"] is not None)["status"]
        assert status["last_verify"]["ok"] and status["last_verified_restore_at"] > status["last_success_at"]
        assert warnings(admin) == set()

        # Verification failed: a flipped byte in the bucket is named on the page.
        name = next(
            k for k in (o["Key"] for o in s3.list_objects_v2(Bucket="http-backup")["Contents"]) if "/objects/" in k
        )
        body = bytearray(s3.get_object(Bucket="http-backup", Key=name)["Body"].read())
        body[len(body) // 2] ^= 0xFF
        s3.put_object(Bucket="http-backup", Key=name, Body=bytes(body))
        assert post("/api/backup/verify").status_code == 202
        wait_idle(admin, lambda st: st["last_verify"]["id"] != status["last_verify"]["id"])
        assert warnings(admin) == {"verification_failed"}
        assert (
            f"The last verification found problems: CORRUPT {name.removeprefix('clinic/')}"
            in admin.get("/admin/backup").text
        )

        # The secret key was in exactly one answer; never in a page, the API, the audit trail or the log.
        for path in ("/admin/backup", "/api/backup", "/admin", "/api/admin", "/admin/audit", "/api/audit"):
            answers.append(admin.get(path).text)
        assert sum(text.count(secret) for text in answers) == 1
        events = admin.get("/api/audit").json()["events"]
        assert any(e["detail"].startswith("backup set up: s3://http-backup/clinic") for e in events)
        assert any("recovery sheet printed or stored" in e["detail"] for e in events)
        log = server.log()
        assert "backup_setup target=s3://http-backup/clinic" in log
        for word in (secret, SECRET_KEY, PASSPHRASE):
            assert word not in log and all(word not in e["detail"] for e in events)


def test_stale_and_failing_backups_are_said_plainly(tmp_path):
    """The clock moved past what the schedule expects (``now`` given: no waiting for days)."""
    from appliance import config
    from appliance.archive import Archive
    from appliance.backup.crypto import generate_identity
    from appliance.backup.state import BackupState
    from appliance.backup.status import backup_status, save_schedule
    from appliance.backup.target import Target
    from appliance.web.backup import warning_text

    archive, state = Archive(tmp_path / "data"), BackupState(tmp_path / "data")
    try:
        state.save_setup(generate_identity(), Target(bucket="b", endpoint="http://127.0.0.1:9"))
        state.finish_run(state.begin_run("backup"), True, {})
        settings = config.load({"data": str(tmp_path / "data")}, environ={})
        day = 86400.0
        assert "stale" not in backup_status(archive, state, settings, now=time.time() + day)["warnings"]  # nightly
        status = backup_status(archive, state, settings, now=time.time() + 2 * day)
        assert "stale" in status["warnings"]
        assert warning_text("stale", status, now=time.time() + 2 * day) == (
            "No successful backup for 2 days: longer than the nightly schedule expects."
        )
        save_schedule(state, {"backup_schedule": "manual"})  # as saved on the page: a week is fine then
        assert "stale" not in backup_status(archive, state, settings, now=time.time() + 2 * day)["warnings"]
        state.finish_run(state.begin_run("backup"), False, {"error": "no bucket 'b' at http://127.0.0.1:9"})
        status = backup_status(archive, state, settings)
        assert warning_text("failing", status).endswith("): no bucket 'b' at http://127.0.0.1:9")
    finally:
        state.close()
        archive.close()


def test_admin_sets_up_backup_in_the_browser(tmp_path_factory, moto, browser):
    """Set-up through the page, the recovery sheet with its QR code (also as printed), the tick,
    "Back up now" until a recent success shows; a viewer gets 403."""
    moto.client().create_bucket(Bucket="browser-backup")
    with running(tmp_path_factory.mktemp("browserbackup") / "data", dicom_workers=0) as server:
        admin = first_admin(server)
        add_user(admin, VIEWER, VIEWER_PASSWORD)
        send_study(server, tmp_path_factory.mktemp("bstudy"), count=3)
        dialogs: list[str] = []
        page = new_page(browser, server, dialogs, viewport={"width": 1100, "height": 900})
        page.goto(page.base + "/login")
        log_in(page, ADMIN, ADMIN_PASSWORD)
        page.wait_for_url(page.base + "/")
        page.click("header nav >> text=Backup")
        page.wait_for_url(page.base + "/admin/backup")
        expect(page.locator("[data-warning=not_configured]")).to_be_visible()
        shot(page, "backup-not-configured")

        fields = setup_form(moto, "browser-backup")
        for name in ("endpoint", "bucket", "prefix", "access_key_id", "secret_access_key", "passphrase", "passphrase2"):
            page.fill(f"#{name}", fields[name])
        page.select_option("#backup_schedule", "manual")
        page.click("button:text('Set up the backup')")
        sheet = page.locator("#sheet")
        expect(sheet).to_be_visible()
        secret = page.inner_text("#sheet-key")
        assert KEY.fullmatch(secret)
        expect(page.locator("#sheet-qr")).to_have_js_property("complete", True)
        assert page.locator("#sheet-qr").evaluate("img => img.naturalWidth") > 100
        assert "Losing BOTH the passphrase and this recovery sheet loses the backup" in sheet.inner_text()
        shot(page, "backup-recovery-sheet")
        page.emulate_media(media="print")
        shot(page, "backup-recovery-sheet-print")
        assert page.locator("header.top").is_hidden() and page.locator("#sheet-confirm").is_hidden()
        page.emulate_media(media="screen")

        page.click("#sheet-confirm button")  # not ticked: the browser refuses the form
        assert page.locator("#sheet").is_visible()
        page.check("text=I have printed or stored the sheet")
        page.click("#sheet-confirm button")
        expect(page.locator("#backup-status")).to_be_visible()
        expect(page.locator("#last-success")).to_have_text("never")
        assert secret not in page.content()  # never shown again

        page.click("text=Back up now")
        expect(page.locator("#last-success")).not_to_have_text("never", timeout=30_000)
        stamp = time.mktime(time.strptime(page.inner_text("#last-success"), "%d %b %Y %H:%M:%S"))  # 6 Dec 2026 22:35:58
        assert time.time() - stamp < 120
        expect(page.locator("#pending")).to_have_text(re.compile(r"^0 objects"))
        assert page.locator("[data-warning=never_succeeded], [data-warning=failing]").count() == 0
        with page.expect_navigation():  # the page reloads once the loop has it, and again when it is done
            page.click(
                "text=Verify a sample now"
            )  # (the loop may have begun one of its own: a first success is due one)
        expect(page.locator("#activity:not([data-busy])")).to_have_text("", timeout=30_000)
        expect(page.locator("#last-verified")).not_to_have_text("never")
        expect(page.locator("#warnings .notice")).to_have_count(0)
        shot(page, "backup-done")
        page.set_viewport_size({"width": 360, "height": 740})
        shot(page, "backup-phone")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        assert secret not in server.log() and SECRET_KEY not in server.log()

        phone = new_page(browser, server, dialogs, viewport={"width": 360, "height": 740}, is_mobile=True)
        phone.goto(phone.base + "/login")
        log_in(phone, VIEWER, VIEWER_PASSWORD)
        phone.wait_for_url(phone.base + "/")
        assert phone.locator("header nav a", has_text="Backup").count() == 0
        answer = phone.goto(phone.base + "/admin/backup")
        assert answer.status == 403 and "needs an admin account" in phone.inner_text("main")
        assert dialogs == []
        assert Path(ARTIFACTS / "backup-done.png").exists()


def backup_children(pid: int) -> list[int]:
    """The service's child processes holding the bucket's client (``python -m appliance.backup``)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"appliance.backup" in command:
            found.append(int(entry.name))
    return found


def unfinished_runs(data: Path) -> list[int]:
    with sqlite3.connect(f"file:{data / 'backup' / 'state.sqlite'}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute("SELECT id FROM run WHERE kind = 'backup' AND finished IS NULL")]


def backup_runs(data: Path) -> list[tuple[int, int | None, str]]:
    with sqlite3.connect(f"file:{data / 'backup' / 'state.sqlite'}?mode=ro", uri=True) as db:
        return list(db.execute("SELECT id, ok, detail FROM run WHERE kind = 'backup' ORDER BY id"))


def wait_for(condition: callable, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_bucket_child_keeps_boto3_out_and_a_killed_one_fails_the_run(tmp_path_factory, moto):
    """Set-up, runs and verifications reach the bucket through a child process: boto3 and
    botocore, which a process never gives back (~40 MB), never load into the service.  The
    child killed (SIGKILL) mid-run fails the run, recorded as such (beside a DICOM worker's
    supervisor, which must not reap it); the next run completes the backup, which verifies
    whole.  Stopping the service mid-run ends the run, recorded as failed, not left open."""
    import botocore

    # A module's path sits in the memory of a process that imported it (see support.procmem).
    botocore_loaded = os.path.join(os.path.dirname(botocore.__file__), "client.py").encode()
    moto.client().create_bucket(Bucket="child-backup")
    data = tmp_path_factory.mktemp("childbackup") / "data"
    # 256 KiB/s: a run of 3 MB lasts ~10 s, long enough to be caught in the middle.
    with running(data, dicom_workers=1, backup_bandwidth_kbps=256, backup_verify_sample_pct=100) as server:
        assert server.proc is not None
        main = server.proc.pid
        admin = first_admin(server)
        assert admin.api_post("/api/backup/setup", **setup_form(moto, "child-backup")).status_code == 200
        send_study(server, tmp_path_factory.mktemp("big"), count=6, rows=512, columns=512)

        assert admin.api_post("/api/backup/run").status_code == 202
        child = wait_for(lambda: backup_children(main), "the backup's child process")[0]
        killed_run = wait_for(lambda: unfinished_runs(data), "the run to begin")[0]
        wait_for(lambda: holds(child, botocore_loaded), "botocore in the child")  # the probe finds what is there
        os.kill(child, signal.SIGKILL)
        last = wait_idle(admin, lambda st: st["last_run"] is not None)["status"]["last_run"]
        assert last["id"] == killed_run and not last["ok"]  # its own row, closed, not a second one
        assert last["error"] == "the backup's S3 process was killed by signal 9"
        assert "failing" in warnings(admin)

        assert admin.api_post("/api/backup/run").status_code == 202
        status = wait_idle(admin, lambda st: st["last_success_at"] is not None, timeout=60)["status"]
        assert status["pending_objects"] == 0 and status["objects"] == 6
        assert admin.api_post("/api/backup/verify").status_code == 202
        status = wait_idle(admin, lambda st: st["last_verify"] is not None)["status"]
        assert status["last_verify"]["ok"] and status["last_verify"]["checked"] == 6 + 1  # and the index snapshot
        assert not holds(main, botocore_loaded)  # after a set-up, three runs and a verification
        assert not backup_children(main)

        send_study(server, tmp_path_factory.mktemp("more"), count=4, rows=512, columns=512)
        assert admin.api_post("/api/backup/run").status_code == 202
        child = wait_for(lambda: backup_children(main), "the backup's child process")[0]
        stopped_run = wait_for(lambda: unfinished_runs(data), "the run to begin")[0]
        assert server.stop() == 0
        assert not Path(f"/proc/{child}").exists()
    assert unfinished_runs(data) == []
    run_id, ok, detail = backup_runs(data)[-1]
    assert run_id == stopped_run and ok == 0 and json.loads(detail)["error"] == "the service stopped during the run"
