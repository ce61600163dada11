"""HTTPS for the web UI (issue 14), against a real `lightbox serve`: the certificate made at the
first start (or the clinic's own) served on the HTTPS port, its fingerprint where the first
visit can be checked, HTTP sent to HTTPS once an admin says so (but /healthz), Secure cookies,
HSTS only for a certificate the admin says is trusted; and Chromium pinned to the box's
certificate by the test (and to nothing else) going through setup, the wizard and the pages."""

from __future__ import annotations

import hashlib
import re
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from appliance.web.auth import COOKIE
from support.browser import another_chromium, expect, shot
from support.lightbox import LightboxProcess
from support.tlsfiles import clinic_ca_and_server, https_server, self_signed, served_fingerprint, spki_pin
from support.waiting import wait_for
from support.web import ADMIN, ADMIN_PASSWORD, Client, base_url, first_admin, https_client, setup_code

HSTS = "Strict-Transport-Security"


def logged_fingerprint(server: LightboxProcess) -> str:
    found = re.findall(r"https port=\d+ certificate_sha256=([0-9A-F:]+)", server.log())
    assert found, server.log()
    return found[-1]


def s_client(port: int, *args: str) -> str:
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args], input="",
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    return done.stdout + done.stderr


def test_the_certificate_made_at_first_start_is_served_and_its_fingerprint_shown(lightbox: LightboxProcess) -> None:
    served = served_fingerprint(lightbox.https_port)
    pem = ssl.get_server_certificate(("127.0.0.1", lightbox.https_port), timeout=10)
    by_openssl = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=pem,
                                capture_output=True, text=True, timeout=60, check=True).stdout  # fmt: skip
    assert by_openssl.strip() == f"sha256 Fingerprint={served}"
    assert logged_fingerprint(lightbox) == served
    kept = lightbox.data / "tls" / "https-fingerprint"  # what the appliance shows on its console
    assert kept.read_text() == served + "\n" and stat.S_IMODE(kept.stat().st_mode) == 0o600
    # Over HTTPS (the client trusts nothing but the certificate the box made), the setup page
    # shows the fingerprint; over plain HTTP it says so, and where its HTTPS twin is.
    secure = https_client(lightbox).get("/setup")
    assert secure.status_code == 200 and served in secure.text and 'id="plain-http"' not in secure.text
    plain = Client(base_url(lightbox)).get("/setup")
    assert 'id="plain-http"' in plain.text and served in plain.text
    assert f'href="https://127.0.0.1:{lightbox.https_port}/setup"' in plain.text
    # TLS 1.2 at least, and suites with forward secrecy and AEAD only: older ones are refused
    # by the server (an alert; one line in its log, no traceback).
    for refused, reason in (
        (["-tls1_1"], "UNSUPPORTED_PROTOCOL"),
        (["-tls1_2", "-cipher", "AES128-SHA"], "NO_SHARED_CIPHER"),
    ):
        said = s_client(lightbox.https_port, *refused)
        assert "Cipher is (NONE)" in said, said
        line = f"tls_handshake_failed address=127.0.0.1 reason={reason}"
        wait_for(lambda line=line: line in lightbox.log(), line)
    assert "ECDHE-RSA-AES256-GCM-SHA384" in s_client(lightbox.https_port, "-tls1_2")
    assert "Traceback" not in lightbox.log()


def test_https_only_and_hsts_as_an_admin_says(lightbox: LightboxProcess) -> None:
    plain = first_admin(lightbox)  # before any admin, both ports serve the setup page
    refused = plain.api_post("/api/https", https_only="on")
    assert refused.status_code == 400 and "from a page opened over HTTPS" in refused.json()["error"]
    assert plain.get("/").status_code == 200

    secure = https_client(lightbox)
    login = secure.login()
    assert login.status_code == 303 and "secure" in login.headers["Set-Cookie"].lower()
    assert secure.get("/api/https").json()["only"] is False
    turned = secure.api_post("/api/https", https_only="on")
    assert turned.status_code == 200 and turned.json()["only"] is True, turned.text
    assert "secure" in turned.headers["Set-Cookie"].lower()  # a new session, on a cookie for HTTPS alone

    https_base = f"https://127.0.0.1:{lightbox.https_port}"
    for method, path, status in (("GET", "/?page=2", 301), ("HEAD", "/admin", 301), ("POST", "/logout", 308),
                                 ("GET", "/studies%20x", 301)):  # fmt: skip
        answer = plain.request(method, path)
        assert answer.status_code == status, (method, path, answer.status_code)
        assert answer.headers["Location"] == https_base + path
    by_name = requests.get(base_url(lightbox) + "/admin", headers={"Host": "lightbox.local:8080"},
                           allow_redirects=False, timeout=10)  # fmt: skip
    assert by_name.headers["Location"] == f"https://lightbox.local:{lightbox.https_port}/admin"
    odd = requests.get(base_url(lightbox) + "/admin", headers={"Host": "evil.example/x"}, allow_redirects=False,
                       timeout=10)  # fmt: skip
    assert odd.status_code == 400 and "Location" not in odd.headers
    assert plain.get("/healthz").status_code == 200 and lightbox.health()["status"] == "ok"
    # The session whose cookie crossed the network in clear is over; the HTTPS one goes on.
    stale = https_client(lightbox)
    stale.cookies.set(COOKIE, plain.cookies[COOKIE])
    assert stale.get("/api/me").status_code == 401
    assert secure.get("/api/me").json()["name"] == ADMIN

    assert secure.api_post("/api/https").json()["only"] is False  # off again: plain HTTP is served
    assert Client(base_url(lightbox)).get("/login").status_code == 200

    # HSTS: never by default (the box's certificate is self-signed), on every HTTPS answer once
    # an admin says the browsers trust the certificate, never over plain HTTP.
    assert HSTS not in secure.get("/healthz").headers
    assert secure.api_post("/api/https", certificate_trusted="on").json()["trusted"] is True
    for path in ("/healthz", "/static/lightbox.css", "/no-such-page"):
        assert secure.get(path).headers[HSTS] == "max-age=31536000", path
    assert HSTS not in plain.get("/healthz").headers
    assert secure.api_post("/api/https").json()["trusted"] is False
    assert HSTS not in secure.get("/healthz").headers


def test_the_clinics_own_certificate_is_served_when_set(lightbox_factory, tmp_path: Path) -> None:
    ca, made = clinic_ca_and_server(tmp_path / "clinic")
    server = lightbox_factory(tls_certificate=made.certificate, tls_private_key=made.private_key)
    leaf = made.certificate.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(leaf)).hexdigest().upper()
    assert served_fingerprint(server.https_port) == ":".join(re.findall("..", digest))
    client = https_client(server, trusted=ca)  # verified up to the clinic's CA: the chain is sent
    page = client.get("/setup")
    assert page.status_code == 200 and served_fingerprint(server.https_port) in page.text
    assert "This box made its own certificate" not in page.text
    assert not (server.data / "tls" / "lightbox.crt").exists()


@pytest.mark.slow  # Chromium
def test_chromium_pinned_to_the_box_certificate_sets_up_and_browses_over_https(
    lightbox: LightboxProcess, browser, tmp_path: Path
) -> None:
    from playwright.sync_api import Error as PlaywrightError

    pem = (lightbox.data / "tls" / "lightbox.crt").read_bytes()
    served = served_fingerprint(lightbox.https_port)
    base = f"https://127.0.0.1:{lightbox.https_port}"
    # Unpinned, Chromium refuses the box's certificate: the pin is what lets this test in ...
    with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
        browser.new_page().goto(base + "/setup")
    with another_chromium(browser, f"--ignore-certificate-errors-spki-list={spki_pin(pem)}") as pinned:
        # ... and the pin lets in that certificate alone: another self-signed one is refused.
        stranger = self_signed(tmp_path / "stranger", "stranger")
        with https_server(stranger) as port, pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
            pinned.new_page().goto(f"https://127.0.0.1:{port}/")
        context = pinned.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(base + "/")
        page.wait_for_url(base + "/setup")
        expect(page.locator("#fingerprint")).to_have_text(served)  # what the first visitor checks
        assert page.locator("#plain-http").count() == 0
        shot(page, "https-setup")
        page.fill("#code", setup_code(lightbox))
        page.fill("#name", ADMIN)
        page.fill("#password", ADMIN_PASSWORD)
        page.fill("#password2", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/wizard/clinic")
        session = next(c for c in context.cookies() if c["name"] == COOKIE)
        assert session["secure"] and session["httpOnly"]

        # The wizard's last step turns "HTTPS only" on (it can: this page came over HTTPS).
        page.goto(base + "/wizard/https")
        expect(page.locator("#fingerprint")).to_have_text(served)
        expect(page.locator("#https_only")).to_be_enabled()
        shot(page, "https-wizard-step", docs=True)
        page.check("#https_only")
        page.click("text=Save and go on")
        page.wait_for_url(base + "/wizard/done")
        expect(page.locator("#summary tr", has_text="Secure connections (HTTPS)")).to_contain_text("done")
        assert next(c for c in context.cookies() if c["name"] == COOKIE)["secure"]

        page.goto(base + "/admin")
        expect(page.locator("#fingerprint")).to_have_text(served)
        expect(page.locator("#https_only")).to_be_checked()
        expect(page.locator("#certificate_trusted")).not_to_be_checked()
        shot(page, "https-admin")
        with page.expect_download() as download:
            page.click("#certificate-download")
        assert Path(download.value.path()).read_bytes() == pem
        page.goto(base + "/")
        expect(page.locator("h1")).to_contain_text("Studies")
        # A plain-HTTP address now leads the browser to HTTPS.
        page.goto(f"http://127.0.0.1:{lightbox.http_port}/admin/audit")
        page.wait_for_url(base + "/admin/audit")
        expect(page.locator("h1")).to_contain_text("Audit")
