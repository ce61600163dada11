"""The Devices page and its JSON API over HTTP against a real `lightbox serve` (two DICOM worker
processes): the policy changed in the UI holds for new associations at once; approve, rename,
ignore, edit, quirks, Test (C-ECHO a DCMTK storescp); forwarding rules and the retry queue.

Everything runs in a private network namespace: DCMTK's storescp cannot bind to 127.0.0.1 only.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appliance.archive import Archive, ArchiveOptions
from conftest import LightboxProcess, free_port
from dicomgen import make_study
from peers import StoreSCP, private_network
from web import Client, first_admin, running

REJECTED_CALLING_AE = "Reason: Calling AE Title Not Recognized"
WAIT = 30.0


@pytest.fixture(scope="module")
def netns():
    with private_network():
        yield


@pytest.fixture(scope="module")
def server(netns, tmp_path_factory) -> LightboxProcess:
    # stable_age 1 s: a study is forwarded (or its job fails) within seconds.
    with running(tmp_path_factory.mktemp("devices") / "data", stable_age=1) as lightbox:
        yield lightbox


@pytest.fixture(scope="module")
def admin(server) -> Client:
    return first_admin(server)


def devices(admin: Client) -> dict[str, dict]:
    answer = admin.get("/api/devices")
    assert answer.status_code == 200, answer.text
    return {d["aet"]: d for d in answer.json()["devices"]}


def policy(admin: Client) -> str:
    return admin.get("/api/devices").json()["policy"]


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what} within {WAIT:.0f} s")


def test_policy_set_in_the_ui_refuses_then_admits_after_approval(server, admin, tmp_path) -> None:
    files = make_study(tmp_path / "s", 2)
    assert policy(admin) == "learning"  # the setting's default
    assert server.storescu(*files, aet="US_WEB_1").returncode == 0
    assert devices(admin)["US_WEB_1"]["status"] == "new"

    assert admin.post("/api/devices/policy", data={"policy": "locked"}).status_code == 403  # no CSRF token
    assert admin.post("/api/devices/policy", data={"policy": "locked"}, headers={"X-CSRF-Token": "forged"}).status_code == 403
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
        page = admin.get("/devices").text
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


def test_policy_chosen_by_an_admin_outlives_the_setting_default(tmp_path) -> None:
    archive = Archive(tmp_path / "data", ArchiveOptions(device_policy="locked"))
    assert archive.devices.policy == "locked"
    archive.devices.set_policy("learning")
    archive.close()
    archive = Archive(tmp_path / "data", ArchiveOptions(device_policy="locked"))  # a restart
    try:
        assert archive.devices.policy == "learning"
    finally:
        archive.close()


def test_rename_edit_quirks_ignore_and_test_with_c_echo(server, admin, tmp_path) -> None:
    assert server.echoscu(aet="US_WEB_3").returncode == 0
    assert admin.post("/api/devices/US_WEB_3/echo").status_code == 403  # no CSRF token
    untested = admin.api_post("/api/devices/US_WEB_3/echo").json()
    assert untested["ok"] is False and "no known port" in untested["message"]

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

    assert admin.api_post("/api/devices/US_WEB_3/rename", name=" Ultrasound room 3 ").json()["device"]["name"] == "Ultrasound room 3"
    # The quirks form: a hidden "no" before each checkbox, the box's "yes" after it when ticked.
    quirks = admin.request(
        "POST", "/api/devices/US_WEB_3/edit", headers={"X-CSRF-Token": admin.csrf()},
        data=[("charset_override", "ISO_IR 144"), ("accept_private_sop_classes", "no"),
              ("accept_private_sop_classes", "yes"), ("lenient_aet", "no")],
    )  # fmt: skip
    device = quirks.json()["device"]
    assert (device["charset_override"], device["accept_private_sop_classes"], device["lenient_aet"]) == ("ISO_IR 144", True, False)
    allowed = admin.request(
        "POST", "/api/devices/US_WEB_3/edit", headers={"X-CSRF-Token": admin.csrf()},
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
    page = admin.get("/devices").text
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
    page = admin.get("/devices").text
    assert "Remove rule %d" % rule_id in page and job["last_error"] in page

    assert admin.request("DELETE", f"/api/forwarding/rules/{rule_id}").status_code == 403  # no CSRF token
    assert admin.api_post(f"/api/forwarding/rules/{rule_id}", method="DELETE").status_code == 200
    forwarding = admin.get("/api/devices").json()["forwarding"]
    assert forwarding["rules"] == [] and forwarding["queue"] == []
    assert admin.api_post(f"/api/forwarding/rules/{rule_id}", method="DELETE").status_code == 404
    assert admin.api_post("/api/forwarding/rules/x", method="DELETE").status_code == 404
