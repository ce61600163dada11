"""The first-run wizard, in Chromium at desktop and phone size, against a real `lightbox serve`:
setup code and first admin, then the clinic's name, time zone, AE title, "Connect your first
modality" (answered by DCMTK's echoscu and storescu while the page waits), the backup (set
up against moto's S3 server, or skipped with a warning that stays) and HTTPS.  Screenshots in
tests/artifacts/wizard-*.png; the README's in docs/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.browser import expect, new_page, shot
from support.dicomgen import make_study
from support.lightbox import LightboxProcess
from support.s3servers import ACCESS_KEY, SECRET_KEY, MotoS3
from support.web import ADMIN, ADMIN_PASSWORD, setup_code

pytestmark = pytest.mark.slow  # a browser, DCMTK and an S3 server

UNIT = "US_ROOM_1"  # the ultrasound unit's own AE title
PASSPHRASE = "a long backup passphrase"


def first_admin_in_the_browser(page, server: LightboxProcess) -> None:
    page.goto(page.base + "/")
    page.wait_for_url(page.base + "/setup")
    page.fill("#code", setup_code(server))
    page.fill("#name", ADMIN)
    page.fill("#password", ADMIN_PASSWORD)
    page.fill("#password2", ADMIN_PASSWORD)
    page.click("button[type=submit]")


def unit_calls(server: LightboxProcess, *files: Path) -> None:
    """DCMTK as the ultrasound unit (calling Lightbox by ``server.aet``): a C-ECHO, or a C-STORE of ``files``."""
    run = server.storescu(*files, aet=UNIT) if files else server.echoscu(aet=UNIT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_wizard_at_desktop_size(lightbox: LightboxProcess, browser, tmp_path: Path) -> None:
    dialogs: list[str] = []
    page = new_page(browser, lightbox, dialogs, viewport={"width": 1280, "height": 900}, timezone_id="America/Denver")
    first_admin_in_the_browser(page, lightbox)

    # The clinic's name: in every page's header from now on.
    page.wait_for_url(page.base + "/wizard/clinic")
    expect(page.locator("nav.steps [aria-current=step]")).to_contain_text("The clinic's name")
    shot(page, "wizard-1-clinic", docs=True)
    page.fill("#clinic_name", "Happy Paws Veterinary")
    page.click("text=Save and go on")

    # The time zone: the browser's is chosen for the admin.
    page.wait_for_url(page.base + "/wizard/time-zone")
    expect(page.locator("header .clinic")).to_have_text("Happy Paws Veterinary")
    expect(page.locator("#time_zone")).to_have_value("America/Denver")
    shot(page, "wizard-2-time-zone")
    page.click("text=Save and go on")

    # The AE title: changed, and in force for the next association without a restart.
    page.wait_for_url(page.base + "/wizard/ae-title")
    expect(page.locator("#aet")).to_have_value("LIGHTBOX")
    page.fill("#aet", "PAWS_PACS")
    shot(page, "wizard-3-ae-title")
    page.click("text=Save and go on")

    # Connect your first modality: the values to type, then the contact as it happens.
    page.wait_for_url(page.base + "/wizard/modality")
    expect(page.locator("#value-aet")).to_have_text("PAWS_PACS")
    expect(page.locator("#value-addresses")).to_contain_text("127.0.0.1")
    expect(page.locator("#value-ports")).to_have_text(str(lightbox.dicom_port))
    expect(page.locator("#contact")).to_contain_text("Waiting for the first image")
    shot(page, "wizard-4-modality-waiting")
    lightbox.aet = "PAWS_PACS"  # the unit is set up with the new title
    unit_calls(lightbox)
    expect(page.locator("#contact .heard")).to_contain_text(f"Contact: {UNIT} from 127.0.0.1")
    expect(page.locator("#contact")).to_contain_text("Waiting for the first image")
    shot(page, "wizard-4-modality-echo")
    files = make_study(tmp_path / "study", 2, patient_name="REX^BUDDY", StudyDescription="Abdomen")
    unit_calls(lightbox, *files)
    expect(page.locator("#contact .arrived")).to_contain_text("First study: REX, BUDDY Abdomen")
    expect(page.locator("#modality-next button")).to_have_text("Go on")
    shot(page, "wizard-4-modality-first-study", docs=True)
    page.click("#modality-next button")

    # No backup: skipped, and said plainly here, in the summary and on the admin page.
    page.wait_for_url(page.base + "/wizard/backup")
    expect(page.locator("#not-backed-up")).to_contain_text("Not backed up yet")
    shot(page, "wizard-5-backup", docs=True)
    page.click("text=Skip: no backup for now")

    # HTTPS: over plain HTTP, "HTTPS only" waits for the page opened over HTTPS (test_web_https.py).
    page.wait_for_url(page.base + "/wizard/https")
    expect(page.locator("#https_only")).to_be_disabled()
    expect(page.locator("#https-only-how a")).to_have_attribute(
        "href", f"https://127.0.0.1:{lightbox.https_port}/wizard/https"
    )
    expect(page.locator("#fingerprint")).to_have_text(re.compile(r"([0-9A-F]{2}:){31}[0-9A-F]{2}"))
    page.click("text=Skip this step")
    page.wait_for_url(page.base + "/wizard/done")
    summary = page.locator("#summary")
    for step, state in (("The clinic's name", "done"), ("Connect your first modality", "done"), ("Backup", "skipped"),
                        ("Secure connections (HTTPS)", "skipped")):  # fmt: skip
        expect(summary.locator("tr", has_text=step)).to_contain_text(state)
    expect(page.locator("section.wizard .notice")).to_contain_text("Not backed up")
    shot(page, "wizard-6-summary", docs=True)

    # Found again on the admin page; the warning stays there until a backup is set up.
    page.click("nav[aria-label=Main] >> text=Admin")
    page.wait_for_url(page.base + "/admin")
    expect(page.locator("#not-backed-up")).to_be_visible()
    expect(page.locator("#clinic_name")).to_have_value("Happy Paws Veterinary")
    expect(page.locator("#time_zone")).to_have_value("America/Denver")
    expect(page.locator("#aet")).to_have_value("PAWS_PACS")
    shot(page, "wizard-admin-not-backed-up")
    page.click("text=Connect a modality")
    page.wait_for_url(page.base + "/admin/connect")
    expect(page.locator("#contact")).to_contain_text("Waiting for the first image")  # a new unit, this time
    assert not dialogs


def test_wizard_at_phone_size_with_the_backup(lightbox: LightboxProcess, browser, moto: MotoS3) -> None:
    moto.client().create_bucket(Bucket="wizard-backup")
    dialogs: list[str] = []
    page = new_page(browser, lightbox, dialogs, viewport={"width": 390, "height": 844}, is_mobile=True)
    first_admin_in_the_browser(page, lightbox)
    for step in ("clinic", "time-zone", "ae-title"):
        page.wait_for_url(page.base + f"/wizard/{step}")
        page.click("text=Skip this step")

    page.wait_for_url(page.base + "/wizard/modality")
    expect(page.locator("#value-aet")).to_have_text(lightbox.aet)
    shot(page, "wizard-phone-modality")
    unit_calls(lightbox)
    expect(page.locator("#contact .heard")).to_contain_text(UNIT)
    shot(page, "wizard-phone-modality-echo", docs=True)
    expect(page.locator("#modality-next button")).to_have_text("Skip for now")
    page.click("#modality-next button")

    page.wait_for_url(page.base + "/wizard/backup")
    for name, value in (
        ("endpoint", moto.endpoint), ("bucket", "wizard-backup"), ("access_key_id", ACCESS_KEY),
        ("secret_access_key", SECRET_KEY), ("passphrase", PASSPHRASE), ("passphrase2", PASSPHRASE),
    ):  # fmt: skip
        page.fill(f"#{name}", value)
    page.select_option("#backup_schedule", "manual")
    page.click("button:text('Set up the backup')")
    expect(page.locator("#sheet")).to_be_visible()
    assert re.fullmatch(r"AGE-SECRET-KEY-1[0-9A-Z]+", page.inner_text("#sheet-key"))
    shot(page, "wizard-phone-recovery-sheet")
    page.check("text=I have printed or stored the sheet")
    page.click("#sheet-confirm button")
    expect(page.locator(".done-note")).to_contain_text("The backup is set up")
    page.click("text=Go on")

    page.wait_for_url(page.base + "/wizard/https")
    page.click("text=Save and go on")  # saved as it is ("HTTPS only" off): the step is done
    page.wait_for_url(page.base + "/wizard/done")
    summary = page.locator("#summary")
    expect(summary.locator("tr", has_text="Backup")).to_contain_text("done")
    expect(summary.locator("tr", has_text="Connect your first modality")).to_contain_text("skipped")
    expect(summary.locator("tr", has_text="Secure connections (HTTPS)")).to_contain_text("done")
    assert page.locator("section.wizard .notice").count() == 0
    shot(page, "wizard-phone-summary")
    page.goto(page.base + "/admin")
    expect(page.locator("#site-form")).to_be_visible()
    assert page.locator("#not-backed-up").count() == 0 and page.locator("#setup-left").count() == 0
    assert not dialogs
