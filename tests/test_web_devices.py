"""The Devices page and its JSON API over HTTP against a real `lightbox serve` (two DICOM worker
processes): the policy changed in the UI holds for new associations at once; approve, rename,
ignore, edit, quirks, Test (C-ECHO a DCMTK storescp); forwarding rules and the retry queue;
and the same story in Chromium.

Everything runs in a private network namespace: DCMTK's storescp cannot bind to 127.0.0.1 only.
"""

from __future__ import annotations

import time

import pytest

from appliance.archive import Archive, ArchiveOptions
from support.browser import expect, log_in, new_page, shot
from support.dicomgen import make_study
from support.lightbox import LightboxProcess
from support.peers import StoreSCP
from support.ports import free_port
from support.waiting import wait_for
from support.web import ADMIN, ADMIN_PASSWORD, Client, first_admin

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("netns")]  # a browser and DCMTK peers

REJECTED_CALLING_AE = "Reason: Calling AE Title Not Recognized"


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"stable_age": 1}  # a study is forwarded (or its job fails) within seconds


def devices(admin: Client) -> dict[str, dict]:
    answer = admin.get("/api/devices")
    assert answer.status_code == 200, answer.text
    return {d["aet"]: d for d in answer.json()["devices"]}


def policy(admin: Client) -> str:
    return admin.get("/api/devices").json()["policy"]


def test_policy_set_in_the_ui_refuses_then_admits_after_approval(server, admin, tmp_path) -> None:
    files = make_study(tmp_path / "s", 2)
    assert policy(admin) == "learning"  # the setting's default
    before = admin.get("/api/devices").json()["version"]
    assert server.storescu(*files, aet="US_WEB_1").returncode == 0
    assert devices(admin)["US_WEB_1"]["status"] == "new"
    after = admin.get("/api/devices").json()["version"]  # the page polls it to notice new devices
    assert after != before and f'data-version="{after}"' in admin.get("/admin/devices").text

    assert admin.post("/api/devices/policy", data={"policy": "locked"}).status_code == 403  # no CSRF token
    assert (
        admin.post("/api/devices/policy", data={"policy": "locked"}, headers={"X-CSRF-Token": "forged"}).status_code
        == 403
    )
    assert policy(admin) == "learning"
    assert admin.api_post("/api/devices/policy", policy="paranoid").status_code == 400
    try:
        assert admin.api_post("/api/devices/policy", policy="locked").json() == {"ok": True, "policy": "locked"}
        # No restart: the next association, in a worker process, is held to the new policy.
        refused = server.storescu(*files, aet="XRAY_WEB_2")
        assert refused.returncode != 0 and REJECTED_CALLING_AE in refused.stdout + refused.stderr
        assert server.storescu(*files, aet="US_WEB_1").returncode != 0  # learned, never approved
        found = devices(admin)
        assert found["XRAY_WEB_2"]["status"] == "refused" and found["XRAY_WEB_2"]["refused"] == 1
        page = admin.get("/admin/devices").text
        assert "Refused — waiting for approval" in page and "Approve XRAY_WEB_2" in page

        assert admin.post("/api/devices/XRAY_WEB_2/approve").status_code == 403  # no CSRF token
        assert devices(admin)["XRAY_WEB_2"]["status"] == "refused"
        approved = admin.api_post("/api/devices/XRAY_WEB_2/approve")
        assert approved.status_code == 200 and approved.json()["device"]["status"] == "approved"
        assert server.storescu(*files, aet="XRAY_WEB_2").returncode == 0
        assert devices(admin)["XRAY_WEB_2"]["associations"] == 1
        assert admin.api_post("/api/devices/NO_SUCH/approve").status_code == 404
    finally:
        assert admin.api_post("/api/devices/policy", policy="learning").status_code == 200
    assert server.storescu(*files, aet="ANOTHER_NEW").returncode == 0
    events = admin.get("/api/audit").json()["events"]
    assert any(e["detail"] == "device policy: locked" and e["user_name"] == "admin" for e in events)


def test_policy_chosen_by_an_admin_outlives_the_setting_default_and_the_cli_sets_it_too(tmp_path) -> None:
    archive = Archive(tmp_path / "data", ArchiveOptions(device_policy="locked"))
    assert archive.devices.policy == "locked"
    archive.devices.set_policy("learning")
    archive.close()
    archive = Archive(tmp_path / "data", ArchiveOptions(device_policy="locked"))  # a restart
    try:
        assert archive.devices.policy == "learning"
    finally:
        archive.close()
    box = LightboxProcess(tmp_path / "data")  # not started: only its `cli` runs (other subcommands)
    assert box.cli("device", "policy").stdout == "device_policy=learning\n"
    assert box.cli("device", "policy", "locked").stdout == "device_policy=locked\n"
    assert box.cli("device", "policy").stdout == "device_policy=locked\n"


def test_rename_edit_quirks_ignore_and_test_with_c_echo(server, admin, tmp_path) -> None:
    assert server.echoscu(aet="US_WEB_3").returncode == 0
    assert admin.post("/api/devices/US_WEB_3/echo").status_code == 403  # no CSRF token
    untested = admin.api_post("/api/devices/US_WEB_3/echo").json()
    assert untested["ok"] is False and "does not know which port US_WEB_3 listens on" in untested["message"]

    scp = StoreSCP(tmp_path / "scp", aet="US_WEB_3")  # the unit's own DICOM port
    try:
        edited = admin.api_post("/api/devices/US_WEB_3/edit", port=str(scp.port), host="127.0.0.1")
        assert edited.status_code == 200 and edited.json()["device"]["port"] == scp.port
        echoed = admin.api_post("/api/devices/US_WEB_3/echo").json()
        assert echoed == {"ok": True, "message": f"127.0.0.1:{scp.port} C-ECHO status 0x0000"}
    finally:
        scp.stop()
    failed = admin.api_post("/api/devices/US_WEB_3/echo").json()
    assert failed["ok"] is False and "no association" in failed["message"]

    assert (
        admin.api_post("/api/devices/US_WEB_3/rename", name=" Ultrasound room 3 ").json()["device"]["name"]
        == "Ultrasound room 3"
    )
    # The quirks form: a hidden "no" before each checkbox, the box's "yes" after it when ticked.
    quirks = admin.request(
        "POST", "/api/devices/US_WEB_3/edit", headers={"X-CSRF-Token": admin.csrf()},
        data=[("charset_override", "ISO_IR 144"), ("accept_private_sop_classes", "no"),
              ("accept_private_sop_classes", "yes"), ("lenient_aet", "no")],
    )  # fmt: skip
    device = quirks.json()["device"]
    assert (device["charset_override"], device["accept_private_sop_classes"], device["lenient_aet"]) == (
        "ISO_IR 144",
        True,
        False,
    )
    allowed = admin.request(
        "POST",
        "/api/devices/US_WEB_3/edit",
        headers={"X-CSRF-Token": admin.csrf()},
        data=[("allowed", ""), ("allowed", "find"), ("allowed", "store")],
    )
    assert allowed.json()["device"]["allowed"] == ["find", "store"]
    assert devices(admin)["US_WEB_3"]["charset_override"] == "ISO_IR 144"  # the allowed form left the quirks alone

    assert admin.api_post("/api/devices/US_WEB_3/edit", charset_override="KLINGON").status_code == 400
    assert admin.api_post("/api/devices/US_WEB_3/edit", port="eighty").status_code == 400
    assert admin.api_post("/api/devices/US_WEB_3/edit", port="70000").status_code == 400
    assert admin.api_post("/api/devices/US_WEB_3/edit", aet="BAD\\AET").status_code == 400
    renamed = admin.api_post("/api/devices/US_WEB_3/edit", aet="US_WEB_3B")
    assert renamed.status_code == 200 and "US_WEB_3B" in devices(admin)
    assert admin.api_post("/api/devices/US_WEB_3B/ignore").json()["device"]["status"] == "ignored"

    # AE titles come from the network: the page shows them as text, and their URLs are quoted.
    assert server.echoscu(aet="<i>X/Y</i>").returncode == 0
    page = admin.get("/admin/devices").text
    assert "<i>X/Y</i>" not in page and "&lt;i&gt;X/Y&lt;/i&gt;" in page
    assert "/api/devices/%3Ci%3EX%2FY%3C%2Fi%3E/approve" in page
    assert admin.api_post("/api/devices/%3Ci%3EX%2FY%3C%2Fi%3E/approve").json()["device"]["status"] == "approved"


def test_forwarding_rules_and_the_retry_queue(server, admin, tmp_path) -> None:
    # A workstation that is down: an approved device with a port becomes a node Lightbox may send to.
    assert server.echoscu(aet="WS_DOWN").returncode == 0
    assert admin.api_post("/api/devices/WS_DOWN/edit", port=str(free_port())).status_code == 200
    assert admin.api_post("/api/devices/WS_DOWN/approve").status_code == 200
    assert admin.get("/api/devices").json()["forwarding"]["destinations"] == ["WS_DOWN"]

    rule = {"destination": "WS_DOWN", "modality": "us"}
    assert admin.post("/api/forwarding/rules", data=rule).status_code == 403  # no CSRF token
    assert admin.api_post("/api/forwarding/rules", destination="NOT_A_NODE").status_code == 400
    added = admin.api_post("/api/forwarding/rules", **rule)
    assert added.status_code == 200, added.text
    rule_id = added.json()["rule"]["id"]
    assert added.json()["rule"]["modality"] == "US"

    files = make_study(tmp_path / "us", 1, modality="US")
    assert server.storescu(*files, aet="US_WEB_4").returncode == 0

    def failed_job() -> dict | None:
        queue = admin.get("/api/devices").json()["forwarding"]["queue"]
        return next((j for j in queue if j["attempts"] >= 1), None)

    wait_for(failed_job, "a forwarding job tried and failed")
    job = failed_job()
    assert job["state"] == "pending" and job["destination"] == "WS_DOWN" and job["last_error"]
    assert job["next_attempt_at"] > time.time()
    page = admin.get("/admin/devices").text
    assert f"Remove rule {rule_id}" in page and job["last_error"] in page

    assert admin.request("DELETE", f"/api/forwarding/rules/{rule_id}").status_code == 403  # no CSRF token
    assert admin.api_post(f"/api/forwarding/rules/{rule_id}", method="DELETE").status_code == 200
    forwarding = admin.get("/api/devices").json()["forwarding"]
    assert forwarding["rules"] == [] and forwarding["queue"] == []
    assert admin.api_post(f"/api/forwarding/rules/{rule_id}", method="DELETE").status_code == 404
    assert admin.api_post("/api/forwarding/rules/x", method="DELETE").status_code == 404


def test_admin_locks_the_box_approves_the_refused_unit_and_tests_it(lightbox_factory, browser, tmp_path) -> None:
    """In Chromium: a unit that stored is listed; locking refuses it, shown as refused; approving
    lets it store again; Test runs a C-ECHO to the unit's own port (a DCMTK storescp)."""
    server = lightbox_factory(stable_age=1)  # a fresh archive: the unit is its only device
    first_admin(server)
    dialogs: list[str] = []
    page = new_page(browser, server, dialogs, viewport={"width": 1280, "height": 900})
    page.goto(page.base + "/admin/devices")
    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(page.base + "/admin/devices")

    assert server.storescu(*make_study(tmp_path / "a", 2), aet="US_ROOM_1").returncode == 0
    unit = page.locator("article.device[data-aet='US_ROOM_1']")
    expect(unit).to_contain_text("New (learned)")  # the page noticed the new device by itself
    expect(unit).to_contain_text("1 study, 2 images")
    assert "OFFIS_DCMTK" in unit.inner_text()
    shot(page, "devices-learning")

    page.check("input[name=policy][value=locked]")
    page.click("#policy-form button[type=submit]")
    expect(page.locator("#policy-now")).to_have_text("locked")
    refused = server.storescu(*make_study(tmp_path / "b", 1), aet="US_ROOM_1")
    assert refused.returncode != 0 and REJECTED_CALLING_AE in refused.stdout + refused.stderr
    expect(unit.locator(".state")).to_have_text("✖ Refused — waiting for approval")
    expect(page.locator("article.device.state-refused")).to_have_count(1)
    shot(page, "devices-refused")

    unit.locator("button", has_text="Approve US_ROOM_1").click()
    expect(unit.locator(".state")).to_have_text("✔ Approved")
    assert server.storescu(*make_study(tmp_path / "c", 1), aet="US_ROOM_1").returncode == 0
    expect(unit).to_contain_text("2 studies, 3 images")

    scp = StoreSCP(tmp_path / "scp", aet="US_ROOM_1")  # the unit's own DICOM port
    try:
        unit.locator("summary").click()
        unit.locator("input[name=port]").fill(str(scp.port))
        shot(page, "devices-edit")
        unit.locator("button", has_text="Save").first.click()
        expect(unit.locator("dt:text-is('Port') + dd")).to_have_text(str(scp.port))
        unit.locator("button", has_text="Test (C-ECHO)").click()
        expect(unit.locator("output.echo-result")).to_have_text(f"C-ECHO ok: 127.0.0.1:{scp.port} C-ECHO status 0x0000")
        shot(page, "devices-echo")
    finally:
        scp.stop()
    unit.locator("button", has_text="Test (C-ECHO)").click()
    expect(unit.locator("output.echo-result.error")).to_contain_text("C-ECHO failed")

    # Forward every new study to the unit (now down): the retry queue shows the failed attempt.
    page.select_option("#fw-dest", "US_ROOM_1")
    page.click("text=Add rule")
    expect(page.locator("table.rules tbody tr")).to_have_count(1)
    assert server.storescu(*make_study(tmp_path / "d", 1), aet="US_ROOM_1").returncode == 0
    job = page.locator("table.queue tbody tr").last  # study c may be queued too: stable after the rule came
    expect(job.locator("td[data-label=Attempts]")).not_to_have_text("0", timeout=30_000)
    expect(job.locator("td[data-label='Last error']")).not_to_have_text("—")
    shot(page, "devices-forwarding")

    phone = new_page(browser, server, dialogs, viewport={"width": 360, "height": 740}, is_mobile=True)
    phone.goto(phone.base + "/admin/devices")
    log_in(phone, ADMIN, ADMIN_PASSWORD)
    phone.wait_for_url(phone.base + "/admin/devices")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360  # nothing wider than the phone
    shot(phone, "devices-phone")
    assert dialogs == []
