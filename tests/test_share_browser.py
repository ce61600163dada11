"""Share links in the system Chromium against `lightbox serve`: a viewer makes a link on the study
page; a colleague opens it on a phone (a fresh context: no login, a touch screen), views an
image, downloads the study; the viewer revokes it and the phone is refused; a PIN link refuses
the wrong PIN and opens with the right one; a de-identified link's pages show no name."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.uid import CTImageStorage, generate_uid

from support.browser import expect, log_in, new_page, shot
from support.dicomgen import make_dataset, write
from support.web import VIEWER, VIEWER_PASSWORD

pytestmark = pytest.mark.slow  # Chromium

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


@pytest.fixture(scope="module")
def study_uid(server: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("share-browser")
    study, series = generate_uid(), generate_uid()
    files = []
    for i in range(3):
        ds = make_dataset(study_uid=study, series_uid=series, modality="CT", SOPClassUID=CTImageStorage, rows=32,
                          columns=32, instance_number=i + 1, patient_name="Phonecase^Rex", patient_id="PH-77",
                          WindowCenter=2048, WindowWidth=4096)  # fmt: skip
        ds.PixelData = np.full((32, 32), 2400, np.uint16).tobytes()
        files.append(write(ds, folder / f"{i}.dcm"))
    result = server.storescu(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    return study


def make_link(page: Any, study_uid: str, pin: str = "", deidentify: bool = False) -> str:
    page.goto(f"{page.base}/studies/{study_uid}")
    form = page.locator("form.share-form")
    expect(form.locator("input[name=days]")).to_have_value("7")
    if pin:
        form.locator("input[name=pin]").fill(pin)
    if deidentify:
        form.locator("input[name=deidentify]").check()
    form.locator("button[type=submit]").click()
    expect(page.locator(".share-made")).to_be_visible()
    return page.locator(".share-url").input_value()


def test_share_link_in_chromium(server: Any, viewer: Any, browser: Any, study_uid: str, tmp_path: Path) -> None:
    dialogs: list[str] = []
    errors: list[str] = []
    page = new_page(browser, server, dialogs, viewport={"width": 1280, "height": 900})
    page.goto(page.base + "/login")
    log_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_url(page.base + "/")
    url = make_link(page, study_uid)
    assert url.startswith(page.base + "/share/") and "Rex" not in url and study_uid not in url
    expect(page.locator(".share-list tbody tr")).to_have_count(1)
    expect(page.locator(".share-list tbody tr td").nth(0)).to_have_text(VIEWER)
    shot(page, "share-study-page")

    # A colleague's phone: no login, touch.
    phone = new_page(browser, server, dialogs, **PHONE)
    phone.on("pageerror", lambda exc: errors.append(str(exc)))
    phone.goto(url)
    expect(phone.locator("h1")).to_have_text("Shared study")
    assert "Phonecase" in phone.inner_text("main, body")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # no sideways scrolling
    shot(phone, "share-phone")
    phone.locator("li.series-item a.view").first.tap()
    phone.wait_for_url("**/share/*/view?series=*")
    expect(phone.locator(".ws-vp .lbv-frame")).to_have_text("1 / 3")
    grey = phone.evaluate("""() => { const c = document.querySelector('.ws-vp canvas');
        return c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data[0]; }""")
    assert abs(grey - 2400 // 16) <= 2, grey
    assert phone.locator(".ws-print").is_hidden() and phone.locator(".ws-priors-toggle").is_hidden()
    phone.go_back()
    with phone.expect_download() as download:
        phone.locator("a[href$='/study.zip']").tap()
    saved = tmp_path / "shared.zip"
    download.value.save_as(saved)
    assert len(zipfile.ZipFile(saved).namelist()) == 4  # three images and the DICOMDIR
    # The rest of the archive is not the phone's
    phone.goto(page.base + "/")
    assert "/login" in phone.url

    # Revoked on the study page: the phone is refused
    page.reload()
    page.locator(".share-revoke").click()
    expect(page.locator(".share-list tbody tr td").nth(5)).to_have_text(f"revoked by {VIEWER}")
    answer = phone.goto(url)
    assert answer is not None and answer.status == 410
    expect(phone.locator("body")).to_contain_text("revoked")
    assert errors == [] and dialogs == []


def test_share_link_with_pin_in_chromium(server: Any, viewer: Any, browser: Any, study_uid: str) -> None:
    dialogs: list[str] = []
    page = new_page(browser, server, dialogs)
    page.goto(page.base + "/login")
    log_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_url(page.base + "/")
    url = make_link(page, study_uid, pin="9317", deidentify=True)
    phone = new_page(browser, server, dialogs, **PHONE)
    phone.goto(url)
    assert "Phonecase" not in phone.content()
    phone.fill("input[name=pin]", "1234")
    phone.tap("button[type=submit]")
    expect(phone.locator("[role=alert]")).to_have_text("Wrong PIN.")
    phone.fill("input[name=pin]", "9317")
    phone.tap("button[type=submit]")
    expect(phone.locator("h1")).to_have_text("Shared study")
    expect(phone.locator("body")).to_contain_text("De-identified")
    phone.locator("li.series-item a.view").first.tap()
    expect(phone.locator(".ws-vp .lbv-frame")).to_have_text("1 / 3")
    for text in ("Phonecase", "PH-77"):
        assert text not in phone.content() and text not in phone.inner_text("body")
    answer = page.request.get(f"{page.base}/api/studies/{study_uid}/anonymised.zip")
    names = zipfile.ZipFile(io.BytesIO(answer.body())).namelist()
    assert len([n for n in names if n.startswith("IMAGES/")]) == 3 and "DEIDENTIFIED.txt" in names
