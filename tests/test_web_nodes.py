"""The Devices page tells the truth and manages the node table, over HTTP against a real
`lightbox serve`: what a device may do under the policy in force, approval that asks for the
port, nodes added, changed, tested and removed from the page (and `lightbox node list` agrees),
messages for a clinic's admin rather than a shell user."""

from __future__ import annotations

import pytest

from support.lightbox import LightboxProcess
from support.ports import free_port
from support.web import Client


def device(admin: Client, aet: str) -> dict:
    return next(d for d in admin.get("/api/devices").json()["devices"] if d["aet"] == aet)


def card(admin: Client, aet: str) -> str:
    """The device's card on the page, as text."""
    page = admin.get("/admin/devices").text
    return page.split(f'data-aet="{aet}"', 1)[1].split("</article>", 1)[0]


def node_list(server: LightboxProcess) -> str:
    listed = server.cli("node", "list")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def test_a_device_shows_what_it_may_do_under_the_policy_in_force(server, admin):
    assert server.echoscu(aet="US_TRUTH").returncode == 0
    learning = device(admin, "US_TRUTH")["access"]
    assert learning == {"admitted": True, "may": ["store"], "receives": False, "testable": False,
                        "reason": "Admitted while the box is learning: once it is locked, refused until approved."}  # fmt: skip
    assert device(admin, "US_TRUTH")["allowed"] == [
        "commit",
        "find",
        "get",
        "move",
        "store",
    ]  # what a node of it would be allowed
    assert 'May now</dt><dd class="may">send images</dd>' in card(admin, "US_TRUTH")
    try:
        assert admin.api_post("/api/devices/policy", policy="locked").status_code == 200
        assert server.echoscu(aet="US_TRUTH").returncode != 0
        locked = device(admin, "US_TRUTH")
        assert locked["status"] == "refused" and locked["access"]["admitted"] is False and locked["access"]["may"] == []
        text = card(admin, "US_TRUTH")
        assert "Refused: the box is locked and this device is not approved." in text
        assert "nothing: every association is refused" in text and "send images" not in text.split("Approve")[0]
        assert "find, get, move, store" not in text
    finally:
        assert admin.api_post("/api/devices/policy", policy="learning").status_code == 200


@pytest.mark.slow
def test_approving_asks_for_the_port_and_says_what_is_missing_without_it(server, admin):
    assert server.echoscu(aet="XRAY_NOPORT").returncode == 0
    assert 'name="port"' in card(admin, "XRAY_NOPORT").split("Approve XRAY_NOPORT")[0]  # asked in the approve form
    approved = admin.api_post("/api/devices/XRAY_NOPORT/approve", port="")
    assert approved.status_code == 200
    assert "cannot send it studies (C-MOVE, forwarding) or test it" in approved.json()["warning"]
    assert approved.json()["device"]["access"]["receives"] is False
    assert "XRAY_NOPORT" not in node_list(server)
    assert "no: its DICOM port is unknown, enter it under Edit" in card(admin, "XRAY_NOPORT")

    echo = admin.api_post("/api/devices/XRAY_NOPORT/echo").json()
    assert echo["ok"] is False and "does not know which port XRAY_NOPORT listens on" in echo["message"]
    assert "lightbox" not in echo["message"] and "`" not in echo["message"]  # no shell command for a clinic admin

    assert admin.api_post("/api/devices/XRAY_NOPORT/approve", port="seventy").status_code == 400
    assert (
        admin.api_post("/api/devices/XRAY_NOPORT/approve", port="70000")
        .json()["error"]
        .startswith("port 70000: a DICOM port")
    )
    with_port = admin.api_post("/api/devices/XRAY_NOPORT/approve", host="127.0.0.1", port=str(server.dicom_port))
    assert "warning" not in with_port.json()
    access = with_port.json()["device"]["access"]
    assert access == {
        "admitted": True,
        "may": ["store", "find", "get", "move", "commit"],
        "receives": True,
        "testable": True,
        "reason": "Approved.",
    }
    assert f"XRAY_NOPORT host=127.0.0.1 port={server.dicom_port}" in node_list(server)
    assert admin.api_post("/api/devices/XRAY_NOPORT/echo").json()["ok"] is True  # Lightbox answers its own C-ECHO


@pytest.mark.slow
def test_an_admin_adds_changes_tests_and_removes_a_node(server, admin):
    form = {"aet": "WS_READ", "name": "Reading room", "host": "127.0.0.1", "port": str(server.dicom_port)}
    assert admin.post("/api/nodes", data=form).status_code == 403  # no CSRF token
    assert (
        admin.post(
            "/api/nodes", data=form, headers={"X-CSRF-Token": admin.csrf(), "Origin": "http://evil.example"}
        ).status_code
        == 403
    )
    added = admin.request("POST", "/api/nodes", headers={"X-CSRF-Token": admin.csrf()},
                          data=[*form.items(), ("allowed", ""), ("allowed", "find"), ("allowed", "store")])  # fmt: skip
    assert added.status_code == 200, added.text
    assert added.json()["node"] == {
        "aet": "WS_READ",
        "host": "127.0.0.1",
        "port": server.dicom_port,
        "name": "Reading room",
        "allowed": ["find", "store"],
        "tls": False,
        "tls_trust": "",
    }
    assert f"WS_READ host=127.0.0.1 port={server.dicom_port} name='Reading room' allow=find,store" in node_list(server)
    assert admin.api_post("/api/nodes", **form).status_code == 409  # taken: change that one instead

    for bad in ({"port": ""}, {"port": "0"}, {"host": " "}, {"aet": "BAD\\AET"}, {"aet": "A" * 17}):
        answer = admin.api_post("/api/nodes", **{**form, "aet": "WS_NEW", **bad})
        assert answer.status_code == 400, (bad, answer.text)
    assert "WS_NEW" not in node_list(server)

    echoed = admin.api_post("/api/nodes/WS_READ/echo").json()
    assert echoed == {"ok": True, "message": f"127.0.0.1:{server.dicom_port} C-ECHO status 0x0000"}
    moved = admin.api_post("/api/nodes/WS_READ/edit", port=str(free_port()))  # only the port changes
    assert moved.status_code == 200 and moved.json()["node"]["name"] == "Reading room"
    assert moved.json()["node"]["allowed"] == ["find", "store"]
    down = admin.api_post("/api/nodes/WS_READ/echo").json()
    assert down["ok"] is False and "nothing answered" in down["message"]

    # A forwarding rule to the node keeps it: removing it, or its right to receive, is refused.
    rule = admin.api_post("/api/forwarding/rules", destination="WS_READ").json()["rule"]
    refused = admin.api_post("/api/nodes/WS_READ", method="DELETE")
    assert (
        refused.status_code == 409
        and refused.json()["error"] == f"Forwarding rule {rule['id']} sends studies to WS_READ: remove it first."
    )
    assert admin.api_post("/api/nodes/WS_READ/edit", allowed="find").status_code == 400
    assert admin.api_post(f"/api/forwarding/rules/{rule['id']}", method="DELETE").status_code == 200

    assert admin.request("DELETE", "/api/nodes/WS_READ").status_code == 403  # no CSRF token
    assert admin.api_post("/api/nodes/WS_READ", method="DELETE").status_code == 200
    assert "WS_READ" not in node_list(server)
    assert admin.api_post("/api/nodes/WS_READ", method="DELETE").status_code == 404
    details = [e["detail"] for e in admin.get("/api/audit").json()["events"] if e["detail"].startswith("node WS_READ")]
    assert details == ["node WS_READ removed", f"node WS_READ changed: 127.0.0.1:{moved.json()['node']['port']}, allowed find,store",
                       f"node WS_READ added: 127.0.0.1:{server.dicom_port}, allowed find,store"]  # fmt: skip


def test_a_node_and_the_learned_device_of_its_ae_title_agree(server, admin):
    assert server.echoscu(aet="US_TWIN").returncode == 0
    added = admin.api_post("/api/nodes", aet="US_TWIN", host="127.0.0.1", port="11112", name="Ultrasound 2")
    assert added.status_code == 200
    twin = device(admin, "US_TWIN")
    assert (twin["port"], twin["name"], twin["access"]["receives"]) == (11112, "Ultrasound 2", True)
    assert twin["access"]["reason"] == "Admitted: it is a known DICOM node."
    assert 'href="#device-' in admin.get("/admin/devices").text.split('id="nodes-h"')[1]  # the node links to its card
    assert admin.api_post("/api/nodes/US_TWIN", method="DELETE").status_code == 200
    twin = device(admin, "US_TWIN")
    assert twin["port"] is None and twin["access"]["receives"] is False


def test_node_pages_are_for_admins(server, admin):
    assert admin.api_post("/api/users", name="viewer1", password="a viewer password", role="viewer").status_code == 200
    viewer = Client(admin.base)
    assert viewer.login("viewer1", "a viewer password").status_code == 303
    assert viewer.get("/api/nodes").status_code == 403
    assert viewer.api_post("/api/nodes", aet="SNEAKY", host="10.0.0.1", port="104").status_code == 403
    assert Client(admin.base).get("/api/nodes").status_code == 401
    assert "SNEAKY" not in node_list(server)


def test_a_tls_node_needs_a_readable_certificate_to_trust(server, admin):
    form = {"aet": "WS_TLS", "host": "127.0.0.1", "port": "2762", "tls": "yes"}
    headers = {"X-CSRF-Token": admin.csrf()}
    refused = admin.post("/api/nodes", data=form, headers=headers)
    assert refused.status_code == 400 and "certificate" in refused.json()["error"]
    garbled = admin.post(
        "/api/nodes", data={**form, "tls_trust": "-----BEGIN CERTIFICATE-----\nnot\n"}, headers=headers
    )
    assert garbled.status_code == 400
    pem = (server.data / "tls" / "lightbox.crt").read_text()
    added = admin.post("/api/nodes", data={**form, "tls_trust": pem}, headers=headers)
    assert added.status_code == 200, added.text
    assert added.json()["node"]["tls"] is True and added.json()["node"]["tls_trust"].strip() == pem.strip()
    # A change that leaves TLS out of the form keeps it (the device sync, a name change).
    renamed = admin.post("/api/nodes/WS_TLS/edit", data={"name": "Remote"}, headers=headers)
    assert renamed.json()["node"]["tls"] is True
    page = admin.get("/admin/devices").text
    assert "127.0.0.1:2762 (TLS)" in page
