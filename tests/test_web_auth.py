"""Accounts and security of the web UI and HTTP API, over HTTP against a real `lightbox serve`."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time

import pytest

from support.lightbox import LightboxProcess
from support.web import (
    ADMIN,
    ADMIN_PASSWORD,
    Client,
    add_user,
    base_url,
    first_admin,
    login_from,
    send_study,
    setup_code,
)

HOSTILE_NAME = "<script>alert(1)</script>^<iframe src/x>"


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"dicom_workers": 0}


@pytest.fixture(scope="module")
def hostile_study(server, tmp_path_factory) -> str:
    return send_study(server, tmp_path_factory.mktemp("hostile"), patient_name=HOSTILE_NAME, patient_id="XSS-1")


@pytest.mark.slow
def test_first_run_leads_to_setup_then_closes_and_sessions_time_out(tmp_path):
    lightbox = LightboxProcess(tmp_path / "data", dicom_workers=0, session_idle_timeout=4, session_max_age=9).start()
    try:
        anonymous = Client(base_url(lightbox))
        for path in ("/", "/login", "/admin", "/studies/1.2.3"):
            answer = anonymous.get(path)
            assert (answer.status_code, answer.headers["Location"]) == (303, "/setup"), path
        assert anonymous.get("/api/studies").status_code == 401
        code = setup_code(lightbox)
        form = {"code": code, "name": ADMIN, "password": "short", "password2": "short"}
        assert anonymous.post("/setup", data={**form, "code": "000000-000000-000000"}).status_code == 403
        assert "at least 12 characters" in anonymous.post("/setup", data=form).text
        form["password"] = form["password2"] = ADMIN_PASSWORD
        answer = anonymous.post("/setup", data=form)
        assert (answer.status_code, answer.headers["Location"]) == (
            303,
            "/wizard",
        )  # the rest of the set-up, step by step
        assert anonymous.get("/").status_code == 200  # setup logged the admin in
        # Setup is closed now, even with the right code.
        assert Client(anonymous.base).post("/setup", data=form).status_code == 403
        assert anonymous.get("/setup").headers["Location"] == "/login"

        time.sleep(4.5)  # idle timeout
        assert anonymous.get("/").headers["Location"] == "/login?next=/"
        logged_in = time.monotonic()
        assert anonymous.login().status_code == 303
        # Busy, but the absolute limit still applies.  The idle limit leaves room for a loaded
        # machine: a session's idle clock is written at most every idle/4 seconds.  The cookie's
        # Max-Age (the absolute limit) counts from a whole second (http.cookiejar truncates "now",
        # as the RFC's seconds are), so the client may drop it up to 1 s before 9 s.
        while (elapsed := time.monotonic() - logged_in) < 9.7:
            status = anonymous.get("/api/changes").status_code
            if elapsed < 7.7:
                assert status == 200, elapsed
            time.sleep(0.2)
        assert anonymous.get("/api/changes").status_code == 401
    finally:
        lightbox.stop()


@pytest.mark.slow
def test_setup_code_file_keeps_the_code_across_restarts_until_the_first_admin_exists(tmp_path):
    """The appliance image shows the code from `setup_code_file` on the SD card's boot partition:
    the code must survive a reboot, never be served, and go once setup is done."""
    kept = tmp_path / "state" / "setup-code"
    lightbox = LightboxProcess(tmp_path / "data", dicom_workers=0, setup_code_file=kept).start()
    try:
        code = setup_code(lightbox)
        assert kept.read_text() == code + "\n" and kept.stat().st_mode & 0o777 == 0o600
        anonymous = Client(base_url(lightbox))
        for path in ("/setup", "/healthz", "/api/studies", "/static/lightbox.js"):
            assert code not in anonymous.get(path).text, path
        lightbox.stop()
        lightbox.start()
        assert setup_code(lightbox) == code and lightbox.log().count("first_run") == 2  # the same after a restart
        first_admin(lightbox)
        assert not kept.exists()
        lightbox.stop()
        lightbox.start()
        assert lightbox.log().count("first_run") == 2 and not kept.exists()
    finally:
        lightbox.stop()


def test_session_cookie_is_httponly_strict_and_secure_over_https(server, admin, tmp_path):
    client = Client(admin.base)
    for target, landing in (
        ("/studies/1.2?q=a", "/studies/1.2?q=a"),
        ("//evil.example/", "/"),
        ("https://evil.example", "/"),
    ):
        answer = client.post("/login", data={"name": ADMIN, "password": ADMIN_PASSWORD, "next": target})
        assert answer.headers["Location"] == landing  # never an open redirect
    cookie = client.login().headers["Set-Cookie"].lower()
    assert "; httponly" in cookie and "; samesite=strict" in cookie and "; secure" not in cookie
    # Served over HTTPS (waitress url_scheme, or a trusted TLS proxy), the cookie is Secure.
    from wsgiref.util import setup_testing_defaults

    from appliance.archive import Archive
    from appliance.web.app import make_app

    archive = Archive(tmp_path / "https")
    archive.users.add(ADMIN, ADMIN_PASSWORD, "admin")
    body = f"name={ADMIN}&password={ADMIN_PASSWORD.replace(' ', '+')}".encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/login", "wsgi.url_scheme": "https", "HTTP_HOST": "pacs.lan",
               "HTTP_ORIGIN": "https://pacs.lan", "CONTENT_TYPE": "application/x-www-form-urlencoded",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}  # fmt: skip
    setup_testing_defaults(environ)
    answered: list = []
    make_app(archive)(environ, lambda status, headers, exc=None: answered.append((status, dict(headers))))
    archive.close()
    assert answered[0][0].startswith("303")
    assert "; secure" in answered[0][1]["Set-Cookie"].lower()


@pytest.mark.slow
def test_wrong_passwords_back_off_per_address(server, admin):
    # Per address: three wrong passwords (any names) from 127.0.0.2, then even the right one waits.
    for name in ("a1", "a2", "a3"):
        assert login_from(server, "127.0.0.2", name, "wrong password!")[0] == 401
    status, text = login_from(server, "127.0.0.2", ADMIN, ADMIN_PASSWORD)
    assert status == 429 and "Try again in" in text
    assert login_from(server, "127.0.0.3", ADMIN, ADMIN_PASSWORD)[0] == 303  # another address is not affected
    # Per user name: a few wrong passwords from other addresses do not lock the name (see
    # test_hostile_lan for the account-wide wait after a spray).
    assert add_user(admin, "target", "target password 1").get("/").status_code == 200
    for source in ("127.0.0.4", "127.0.0.5", "127.0.0.6"):
        assert login_from(server, source, "target", "wrong password!")[0] == 401
    assert login_from(server, "127.0.0.7", "target", "target password 1")[0] == 303
    time.sleep(5.2)  # the first wait is five seconds
    assert login_from(server, "127.0.0.2", ADMIN, ADMIN_PASSWORD)[0] == 303


def test_every_route_needs_its_role(server, admin, viewer, tmp_path):
    """Enumerate the app's routes: a new route without its guard fails here."""
    from appliance.archive import Archive
    from appliance.web.app import make_app

    archive = Archive(tmp_path / "routes")
    app = make_app(archive)
    archive.close()
    anonymous = Client(admin.base)
    viewer_csrf = viewer.csrf()
    checked = 0
    for route in app.routes:
        access = route.callback.access
        path = re.sub(r"<[^>]+>", "1.2.3", route.rule)
        label = f"{route.method} {route.rule}"
        if access == "public":
            assert route.rule in ("/healthz", "/login", "/setup", "/static/<path:path>") or route.rule.startswith(
                "/share/<token>"  # a share link checks its own token (shared.py; tests/test_share.py)
            ), label
            continue
        answer = anonymous.request(route.method, path)
        if path.startswith(("/api/", "/dicom-web/")) or path == "/wado":  # scripts and viewers: Basic
            assert answer.status_code == 401, label
            assert answer.headers["WWW-Authenticate"] == 'Basic realm="Lightbox"', label
        else:
            assert (answer.status_code, answer.headers["Location"].split("?")[0]) == (303, "/login"), label
        checked += 1
        if route.rule in ("/logout", "/api/me/password"):  # would end the session, or count as a wrong password;
            continue  # both are tested on their own
        as_viewer = viewer.request(route.method, path, headers={"X-CSRF-Token": viewer_csrf})
        if access == "admin":
            assert as_viewer.status_code == 403, label
        else:
            assert access == "viewer", label
            assert as_viewer.status_code in (200, 400, 404), label
    assert checked >= 15
    assert viewer.get("/admin").status_code == 403


def test_unguarded_route_is_refused_at_start(tmp_path):
    from appliance.archive import Archive
    from appliance.web.app import check_routes, make_app

    archive = Archive(tmp_path / "d")
    app = make_app(archive)
    archive.close()
    app.get("/api/forgotten")(lambda: {"patients": "all of them"})
    with pytest.raises(RuntimeError, match="/api/forgotten"):
        check_routes(app)


def test_state_changing_requests_need_csrf_token_and_same_origin(server, admin):
    token = admin.csrf()
    user = {"name": "csrfvictim", "password": "some password 12", "role": "admin"}
    assert admin.post("/api/users", data=user).status_code == 403  # no token
    assert admin.post("/api/users", data=user, headers={"X-CSRF-Token": "forged"}).status_code == 403
    evil = {"X-CSRF-Token": token, "Origin": "http://evil.example"}
    assert admin.post("/api/users", data=user, headers=evil).status_code == 403
    assert admin.post("/logout", data={"csrf": token}, headers={"Origin": "http://evil.example"}).status_code == 403
    assert (
        admin.post("/login", data={"name": ADMIN, "password": ADMIN_PASSWORD}, headers={"Origin": "null"}).status_code
        == 403
    )
    assert "csrfvictim" not in admin.get("/api/users").text
    answer = admin.post("/api/users", data=user, headers={"X-CSRF-Token": token})
    assert answer.status_code == 200 and "csrfvictim" in answer.text
    events = admin.get("/api/audit").json()["events"]
    assert any(e["event"] == "SecurityAlert" and "csrf" in e["detail"] for e in events)


def test_http_basic_for_the_api_only(server, admin):
    anonymous = Client(admin.base)
    assert anonymous.get("/api/studies", auth=(ADMIN, ADMIN_PASSWORD)).status_code == 200
    assert anonymous.get("/api/studies", auth=(ADMIN, ADMIN_PASSWORD)).status_code == 200  # cached verification
    assert anonymous.get("/api/studies", auth=(ADMIN, "not the password")).status_code == 401
    assert anonymous.get("/api/studies", headers={"Authorization": "Basic %%%"}).status_code == 401
    assert anonymous.get("/", auth=(ADMIN, ADMIN_PASSWORD)).status_code == 303  # pages need a session
    # A script may change things with Basic credentials and no CSRF token (it sends no Origin).
    script = Client(admin.base)
    answer = script.request("POST", admin.base + "/api/users", data={"name": "script-made", "password": "x" * 12},
                            auth=(ADMIN, ADMIN_PASSWORD), headers={"Origin": None})  # fmt: skip
    assert answer.status_code == 200, answer.text


def test_security_headers_on_every_answer(server, admin):
    for path in ("/", "/login", "/static/lightbox.css", "/no-such-page", "/api/no-such-thing", "/healthz"):
        answer = admin.get(path)
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"], path
        assert "script-src" not in answer.headers["Content-Security-Policy"]  # default-src 'self': no inline script
        assert answer.headers["X-Content-Type-Options"] == "nosniff", path
    assert admin.get("/").headers["Cache-Control"] == "no-store"


def test_hostile_patient_name_is_shown_as_text(server, admin, hostile_study):
    for path in ("/?q=script", f"/studies/{hostile_study}"):
        page = admin.get(path).text
        assert "<script>alert" not in page and "<iframe" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;, &lt;iframe src/x&gt;" in page, path
    assert admin.get("/api/studies?q=script").json()["studies"][0]["patient_name"] == HOSTILE_NAME


def test_viewer_cannot_manage_users(server, admin, viewer):
    answer = viewer.api_post("/api/users", name="sneaky", password="sneaky password", role="admin")
    assert answer.status_code == 403
    assert viewer.get("/admin/audit").status_code == 403
    assert "Admin" not in viewer.get("/").text.split("<main")[0]  # no admin link in the navigation


def test_own_password_change_needs_the_current_one(server, admin):
    changer = add_user(admin, "changer", "first password 1")
    elsewhere = Client(admin.base)
    assert elsewhere.login("changer", "first password 1").status_code == 303
    assert "Change your password" in changer.get("/account").text
    assert (
        changer.api_post("/api/me/password", current="wrong password", password="second password 2").status_code == 403
    )
    assert changer.api_post("/api/me/password", current="first password 1", password="short").status_code == 400
    assert (
        changer.api_post("/api/me/password", current="first password 1", password="second password 2").status_code
        == 200
    )
    assert changer.get("/account").status_code == 200  # this browser stays logged in
    assert elsewhere.get("/account").status_code == 303  # the other session ended
    assert elsewhere.login("changer", "second password 2").status_code == 303


@pytest.mark.slow
def test_cli_user_commands_and_ended_sessions(server, admin):
    def cli(*args: str, password: str | None = None) -> subprocess.CompletedProcess:
        flags = ("--password-stdin",) if password is not None else ()
        return subprocess.run(
            [sys.executable, "-m", "appliance", "user", *args, *flags, "--data", str(server.data)],
            input=(password or "") + "\n", capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    assert cli("add", "nurse", "--role", "viewer", password="nurse password 1").returncode == 0
    assert cli("add", "nurse", password="nurse password 1").returncode == 2  # exists
    assert cli("add", "shorty", password="short").returncode == 2
    assert "nurse role=viewer" in cli("list").stdout
    nurse = Client(admin.base)
    assert nurse.login("nurse", "nurse password 1").status_code == 303
    assert nurse.get("/").status_code == 200
    assert cli("passwd", "nurse", password="another password").returncode == 0
    assert nurse.get("/").status_code == 303  # the password change ended the session
    assert nurse.login("nurse", "another password").status_code == 303
    assert cli("remove", "nurse").returncode == 0
    assert nurse.get("/api/changes").status_code == 401
    assert cli("remove", "nurse").returncode == 1


def test_audit_trail_records_logins_views_and_user_changes(server, admin, hostile_study):
    assert admin.get(f"/api/studies/{hostile_study}").status_code == 200
    events = admin.get("/api/audit").json()["events"]
    kinds = {(e["event"], e["outcome"]) for e in events}
    assert ("UserAuthentication", 0) in kinds and ("UserAuthentication", 4) in kinds  # logins, a failed one
    viewed = [e for e in events if e["event"] == "DICOMInstancesAccessed"]
    assert viewed[0]["study_uid"] == hostile_study and viewed[0]["user_name"] == ADMIN
    assert viewed[0]["address"] == "127.0.0.1"
    assert any(e["event"] == "SecurityAlert" and "added as" in e["detail"] for e in events)
    page = admin.get("/admin/audit").text
    assert "DICOMInstancesAccessed" in page


def test_admin_sees_the_settings_in_force_a_viewer_does_not(server, admin, viewer):
    settings = {s["name"]: s for s in admin.get("/api/admin").json()["settings"]}
    assert settings["stable_age"]["value"] == server.settings["stable_age"]
    assert settings["dicom_port"]["value"] == server.dicom_port != settings["dicom_port"]["default"]
    page = admin.get("/admin").text
    assert "<code>find_max_results</code>" in page and f"{server.dicom_port} (changed; default 11112)" in page
    assert viewer.get("/api/admin").status_code == 403
