"""The web UI in a real browser: Playwright driving the system Chromium against `lightbox serve`.

Screenshots of the main pages go to tests/artifacts/ (git-ignored) for people to look at.
"""

from __future__ import annotations

import re
import zipfile

import pytest
from pydicom import dcmread
from pydicom.fileset import FileSet

from support.browser import TIMEOUT_MS, expect, log_in, new_page, shot
from support.web import ADMIN, ADMIN_PASSWORD, send_study, setup_code

pytestmark = pytest.mark.slow  # Chromium

HOSTILE = "<b>bold</b><script>alert(2)</script>^Eve"


def wait_rows(page, count: int) -> None:
    # A locator assertion, not wait_for_function: the pages' CSP (rightly) forbids eval.
    expect(page.locator("#studies tbody tr")).to_have_count(count, timeout=TIMEOUT_MS)


def test_clinic_day(server, browser, tmp_path):
    """First-run setup, login with backoff, a study arriving by storescu found by typing, opened
    (thumbnails, the viewer, a JPEG), downloaded and read with pydicom, a viewer account kept out
    of admin, logout."""
    dialogs: list[str] = []
    page = new_page(browser, server, dialogs, viewport={"width": 1280, "height": 800})

    # First run: every page leads to the setup page.
    page.goto(page.base + "/admin")
    assert page.url.endswith("/setup")
    shot(page, "setup")
    page.fill("#code", "000000-000000-000000")
    page.fill("#name", ADMIN)
    page.fill("#password", ADMIN_PASSWORD)
    page.fill("#password2", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    assert "not right" in page.inner_text("[role=alert]")
    page.fill("#code", setup_code(server))
    page.fill("#password", ADMIN_PASSWORD)
    page.fill("#password2", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(page.base + "/wizard/clinic")  # the set-up steps (test_web_wizard.py); the studies now
    page.click("nav[aria-label=Main] >> text=Studies")
    page.wait_for_url(page.base + "/")
    assert page.inner_text("h1") == "Studies"

    # Log out, then wrong passwords: the fourth attempt must wait, even with the right password.
    page.click("text=Log out")
    page.wait_for_url(re.compile(r"/login$"))
    for _ in range(3):
        log_in(page, ADMIN, "not my password")
        assert "Wrong user name or password" in page.inner_text("[role=alert]")
    log_in(page, ADMIN, ADMIN_PASSWORD)
    assert "Too many failed logins" in page.inner_text("[role=alert]")
    shot(page, "login-backoff")
    page.wait_for_timeout(5200)  # the first wait is five seconds
    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(page.base + "/")

    # Studies sent by DCMTK storescu appear without a reload (the page polls the change log).
    study_uid = send_study(server, tmp_path / "a", count=3, patient_name="Ångström^Åsa", patient_id="PW-1",
                           modality="IO", StudyDescription="Bitewings")  # fmt: skip
    send_study(server, tmp_path / "b", count=1, patient_name="Berg^Bo", patient_id="PW-2", modality="US")
    send_study(server, tmp_path / "c", count=1, patient_name=HOSTILE, patient_id="PW-3", modality="XC")
    page.wait_for_selector("#studies tbody tr:has-text('Ångström, Åsa')")
    assert page.locator("#studies tbody tr").count() == 3

    # Search as you type, case- and accent-insensitive.
    page.click("#q")
    page.keyboard.type("angstr", delay=40)
    wait_rows(page, 1)
    assert "Ångström, Åsa" in page.inner_text("#studies tbody")
    assert "q=angstr" in page.url  # the address can be bookmarked or shared
    shot(page, "studies-search")

    # The hostile name is text: no dialog, no injected element.
    page.fill("#q", "script")
    expect(page.locator("#studies tbody")).to_contain_text("<b>bold</b><script>alert(2)</script>, Eve")
    wait_rows(page, 1)
    assert page.locator("#studies tbody b, #studies tbody script").count() == 0
    page.fill("#q", "")
    wait_rows(page, 3)
    shot(page, "studies")

    # Keyboard: sort by name from the keyboard, then open the study with Enter.
    page.focus("button[data-sort=name]")
    page.keyboard.press("Enter")
    page.wait_for_selector("th[aria-sort=ascending] button[data-sort=name]")
    page.fill("#q", "PW-1")
    expect(page.locator("#studies tbody")).to_contain_text("PW-1")
    wait_rows(page, 1)
    page.focus("#studies tbody a")
    page.keyboard.press("Enter")
    page.wait_for_url(page.base + f"/studies/{study_uid}")
    assert "Bitewings" in page.inner_text("h1")
    assert "3 images" in page.inner_text(".series")

    # The series thumbnail loads; clicking it opens the viewer page; Back returns; an image as JPEG.
    thumb = page.locator("img.thumb").first
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("img => img.naturalWidth") > 0
    shot(page, "study")
    thumb.click()
    page.wait_for_url(re.compile(rf"/studies/{study_uid}/view\?"))
    expect(page.locator("#viewer .lbv-frame")).to_have_text("1 / 3")
    page.keyboard.press("ArrowDown")  # the viewer has the focus: the keys page through the frames
    expect(page.locator("#viewer .lbv-frame")).to_have_text("2 / 3")
    shot(page, "viewer")
    page.go_back()
    page.wait_for_url(page.base + f"/studies/{study_uid}")
    page.click("summary:text('Images as JPEG or PNG')")
    with page.expect_download() as download:
        page.locator("a", has_text="JPEG").first.click()
    jpeg = tmp_path / "image.jpg"
    download.value.save_as(jpeg)
    assert jpeg.read_bytes()[:3] == b"\xff\xd8\xff"

    # Download the study as a ZIP and read it with pydicom.
    with page.expect_download() as download:
        page.click("text=Download study")
    path = tmp_path / "study.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path / "media")
    fileset = FileSet(dcmread(tmp_path / "media" / "DICOMDIR"))
    assert sorted(str(i.load().PatientID) for i in fileset) == ["PW-1"] * 3

    # The admin page; add a viewer through its form.
    page.goto(page.base + "/admin")
    page.fill("#new-name", "frontdesk")
    page.fill("#new-password", "front desk password")
    page.click("text=Add user")
    page.wait_for_selector("td:text-is('frontdesk')")
    assert "Export" in page.inner_text("main")  # the download is in the recent activity
    shot(page, "admin")
    page.goto(page.base + "/admin/audit")
    shot(page, "audit")
    page.click("text=Log out")
    page.wait_for_url(re.compile(r"/login$"))

    # A viewer on a phone: can browse, cannot reach the admin pages.
    phone = new_page(browser, server, dialogs, viewport={"width": 360, "height": 740}, is_mobile=True)
    phone.goto(phone.base + "/")
    log_in(phone, "frontdesk", "front desk password")
    phone.wait_for_url(phone.base + "/")
    phone.wait_for_selector("#studies tbody tr:has-text('Berg, Bo')")
    assert phone.locator("header nav a", has_text="Admin").count() == 0
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360  # nothing wider than the phone
    shot(phone, "studies-phone")
    answer = phone.goto(phone.base + "/admin")
    assert answer.status == 403 and "needs an admin account" in phone.inner_text("main")
    phone.goto(phone.base + f"/studies/{study_uid}")
    shot(phone, "study-phone")
    phone.click("text=Log out")
    phone.wait_for_url(re.compile(r"/login$"))
    phone.goto(phone.base + "/")
    assert "/login" in phone.url
    assert dialogs == []
