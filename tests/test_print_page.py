"""The print page (/studies/<uid>/print: print.tpl, print.js, print.css) in the system Chromium
against `lightbox serve`, a veterinary CT series sent by DCMTK storescu: the clinic, the animal,
its owner and the study on every sheet, 4 images a sheet, a PDF of the right pages read back by
poppler's pdftotext, no page chrome printed, and a GSPS saved through the API drawn over the
image and its measurement listed."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.uid import generate_uid

from support.browser import TIMEOUT_MS, expect, log_in, new_page
from support.dicomgen import make_dataset, write
from support.tools import require
from support.web import VIEWER, VIEWER_PASSWORD

pytestmark = pytest.mark.slow  # Chromium

CLINIC = "Riverside Veterinary Clinic"
LENGTH = "Length 48.0 mm"
B_VALUES = [400, 1200, 2000, 2800]  # series b, slice by slice: grey value / 16 on the canvas at 2048/4096


@pytest.fixture(scope="module")
def study(server: Any, admin: Any, viewer: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Six CT slices of a dog (64x64, flat grey), the clinic's name set, and a GSPS of a line
    across row 32 with its length as text, saved by the viewer account through the API."""
    folder = tmp_path_factory.mktemp("print")
    uids = {"study": generate_uid(), "series": generate_uid()}
    files = []
    for i in range(6):
        ds = make_dataset(study_uid=uids["study"], series_uid=uids["series"], modality="CT", rows=64, columns=64,
                          instance_number=i + 1, patient_id="VET-7", patient_name="Rex^Dog", WindowCenter=2048,
                          WindowWidth=4096, PatientSpeciesDescription="Canine", PatientBreedDescription="Beagle",
                          ResponsiblePerson="Smith^Anna", StudyDescription="Thorax", AccessionNumber="ACC-42",
                          StudyDate="20261120")  # fmt: skip
        ds.PixelData = np.full((64, 64), 1024, np.uint16).tobytes()
        files.append(write(ds, folder / f"{i}.dcm"))
    # b: four slices of a value each (the viewer's second viewport); c: a left-to-right gradient.
    uids["b"], uids["c"] = generate_uid(), generate_uid()
    for i in range(4):
        ds = make_dataset(study_uid=uids["study"], series_uid=uids["b"], modality="CT", rows=64, columns=64,
                          instance_number=i + 1, patient_id="VET-7", patient_name="Rex^Dog", SeriesNumber=2,
                          WindowCenter=2048, WindowWidth=4096)  # fmt: skip
        ds.PixelData = np.full((64, 64), B_VALUES[i], np.uint16).tobytes()
        files.append(write(ds, folder / f"b{i}.dcm"))
    ds = make_dataset(
        study_uid=uids["study"],
        series_uid=uids["c"],
        modality="CT",
        rows=64,
        columns=64,
        patient_id="VET-7",
        patient_name="Rex^Dog",
        SeriesNumber=3,
        WindowCenter=2048,
        WindowWidth=4096,
    )
    ds.PixelData = np.tile(np.arange(64, dtype=np.uint16) * 64, (64, 1)).tobytes()
    files.append(write(ds, folder / "c.dcm"))
    result = server.storescu(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert admin.api_post("/api/site", clinic_name=CLINIC).status_code == 200
    state = {"label": "MEASURE", "layers": [{"name": "MEASURE", "order": 1}], "annotations": [{
        "layer": "MEASURE", "graphics": [{"type": "POLYLINE", "points": [[8, 32], [56, 32]]}],
        "texts": [{"text": LENGTH, "box": [[8, 40], [60, 52]]}]}]}  # fmt: skip
    answer = viewer.post(f"/api/series/{uids['series']}/presentation-states", json=state,
                         headers={"X-CSRF-Token": viewer.csrf()})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return uids


def ready(page: Any) -> None:
    """Wait for print.js to have loaded and drawn every image (Playwright's evaluate: the page's
    CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while page.evaluate("() => document.getElementById('print').dataset.ready") != "1":
        assert time.monotonic() < deadline, "the print page never got ready"
        page.wait_for_timeout(50)


def test_print_page(server: Any, viewer: Any, browser: Any, study: dict[str, str], tmp_path: Path) -> None:
    pdftotext, pdfinfo = require("/usr/bin/pdftotext"), require("/usr/bin/pdfinfo")
    errors: list[str] = []
    page = new_page(browser, server, [], viewport={"width": 1000, "height": 800})
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page.base + "/login")
    log_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_url(page.base + "/")

    page.goto(f"{page.base}/studies/{study['study']}/print?series={study['series']}&per_page=4")
    ready(page)

    # Every sheet: the clinic, the animal, its owner, the study.
    sheets = page.locator(".pr-sheet")
    assert sheets.count() == 2
    for i in range(2):
        head = sheets.nth(i).locator(".pr-head").inner_text()
        for expected in (CLINIC, "Rex, Dog", "VET-7", "Canine", "Beagle", "Owner: Smith, Anna", "20 Nov 2026", "Thorax",
                         "ACC-42"):  # fmt: skip
            assert expected in head, (expected, head)

    # 4 a sheet: a 2x2 grid inside the first sheet, the last 2 on the second; every image loaded.
    boxes = [f.bounding_box() for f in sheets.nth(0).locator(".pr-figure").all()]
    sheet = sheets.nth(0).bounding_box()
    assert len(boxes) == 4 and sheets.nth(1).locator(".pr-figure").count() == 2
    assert len({round(b["x"]) for b in boxes}) == 2 and len({round(b["y"]) for b in boxes}) == 2
    for b in boxes:
        assert sheet["x"] <= b["x"] and b["x"] + b["width"] <= sheet["x"] + sheet["width"] + 0.5
        assert sheet["y"] <= b["y"] and b["y"] + b["height"] <= sheet["y"] + sheet["height"] + 0.5
        assert b["width"] > 200 and b["height"] > 200
    assert page.evaluate("() => [...document.images].map(i => i.complete && i.naturalWidth)") == [64] * 6

    # The image drawn on the canvas (1024 at 2048/4096: grey 64) and the GSPS (the newest of the
    # series) over it: yellow where its line runs (row 32), the image above it; its text listed.
    pixels = page.evaluate("""() => [...document.querySelectorAll('.pr-figure canvas')].map(c => {
        const k = c.width / 64, g = c.getContext('2d');  // the canvas: 1024 pixels or more a side
        return [[...g.getImageData(32 * k, 32 * k, 1, 1).data], [...g.getImageData(32 * k, 10 * k, 1, 1).data]]; })""")
    assert len(pixels) == 6
    for on_line, above in pixels:
        assert on_line[0] > 200 and on_line[1] > 180 and on_line[2] < 80 and on_line[3] > 200, on_line
        assert all(abs(v - 64) <= 3 for v in above[:3]) and above[3] == 255, above
    assert page.locator(".pr-measurements li").all_inner_texts() == [LENGTH] * 6
    assert "MEASURE" in page.locator("select[name=state] option[selected]").inner_text()

    # Printed: no bar, no buttons, no form; a PDF of 2 pages with the animal's name and the measurement.
    assert page.locator("nav.pr-bar").is_visible() and page.locator("button.pr-print").is_visible()
    page.emulate_media(media="print")
    assert not page.locator("nav.pr-bar").is_visible() and not page.locator("button.pr-print").is_visible()
    assert page.locator(".pr-sheet").first.is_visible()
    pdf = tmp_path / "print.pdf"
    page.pdf(path=str(pdf), prefer_css_page_size=True)
    info = subprocess.run([pdfinfo, pdf], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Pages:\s+2$", info, re.M), info
    text = subprocess.run([pdftotext, "-layout", pdf, "-"], capture_output=True, text=True, check=True).stdout
    assert text.count("Rex, Dog") == 2 and CLINIC in text and "Smith, Anna" in text and LENGTH in text, text

    # One image (the one the user is on), 6 a page, without annotations: one page, a clean canvas.
    page.emulate_media(media="screen")
    page.goto(f"{page.base}/studies/{study['study']}/print?series={study['series']}&image=3&per_page=6&state=none")
    ready(page)
    assert page.locator(".pr-figure").count() == 1 and "Image 3 of 6" in page.inner_text(".pr-figure figcaption")
    clean = page.evaluate("""() => { const c = document.querySelector('.pr-figure canvas');
        return [...c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data]; }""")
    assert all(abs(v - 64) <= 3 for v in clean[:3]), clean
    assert page.locator(".pr-measurements li").count() == 0
    assert errors == []


def test_print_refuses_what_it_cannot_print(viewer: Any, study: dict[str, str]) -> None:
    here = f"/studies/{study['study']}/print?series={study['series']}"
    assert viewer.get(here + "&per_page=3").status_code == 400
    assert viewer.get(here + "&image=7").status_code == 400
    assert viewer.get(here + "&window=abc").status_code == 400
    assert viewer.get(here + "&images=1.2.3").status_code == 404
    assert viewer.get(here + "&state=1.2.3").status_code == 404
    assert viewer.get(f"/studies/{study['study']}/print?series=1.2.3").status_code == 404
    assert viewer.get(here + "&images=" + ",".join(["1.2"] * 61)).status_code == 400


def log_in_page(browser: Any, server: Any, errors: list[str]) -> Any:
    page = new_page(browser, server, [], viewport={"width": 1200, "height": 800})
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page.base + "/login")
    log_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_url(page.base + "/")
    return page


def centre(page: Any) -> list[int]:
    """The RGBA at the middle of the (first) print canvas."""
    return page.evaluate("""() => { const c = document.querySelector('.pr-figure canvas');
        return [...c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data]; }""")


def test_print_follows_the_viewer(server: Any, viewer: Any, browser: Any, study: dict[str, str]) -> None:
    """The viewer's Print link prints what the active viewport shows: its series, its image, its
    window and its presentation state (or none)."""
    errors: list[str] = []
    page = log_in_page(browser, server, errors)
    page.goto(f"{page.base}/studies/{study['study']}/view?layout=2&series={study['series']}&series={study['b']}")
    second = page.locator(".ws-vp[data-index='1']")
    expect(second.locator(".lbv-frame")).to_have_text("1 / 4")
    expect(page.locator(".ws-vp[data-index='0'] .lbv-frame")).to_have_text("1 / 6")
    # Viewport 1 (series a) shows its GSPS: the link names it.
    page.click(".ws-vp[data-index='0'] canvas")
    page.hover("a.ws-print")
    href = page.get_attribute("a.ws-print", "href")
    assert f"series={study['series']}" in href and "image=1" in href, href
    assert page.evaluate("() => document.querySelector('.ws-vp').lightboxViewer.states.applied") in href

    # Viewport 2, image 3, a window typed: Print opens series b, image 3, that window, no state.
    second.locator("canvas").click()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(second.locator(".lbv-frame")).to_have_text("3 / 4")
    second.locator(".lbv-center").fill("1800")
    second.locator(".lbv-width").fill("1000")
    second.locator(".lbv-width").press("Enter")
    sop = page.evaluate(
        "() => { const v = document.querySelectorAll('.ws-vp')[1].lightboxViewer; return v.frames[v.index].sop; }"
    )
    with page.context.expect_page() as opened:
        page.click("a.ws-print")
    printed = opened.value
    printed.wait_for_load_state()
    ready(printed)
    assert printed.locator("select[name=series]").input_value() == study["b"]
    assert printed.locator(".pr-figure").count() == 1
    assert printed.get_attribute(".pr-figure", "data-sop-uid") == sop
    assert "Image 3 of 4" in printed.inner_text(".pr-figure figcaption")
    assert "window=1800%2C1000" in printed.url, printed.url
    assert "state=none" in printed.url
    # Slice 3 is 2000: at window 1800/1000 it is grey 179, not the file's 2048/4096 (125) nor
    # another slice's (0 or 255).
    grey = round(255 * (2000 - (1800 - 0.5 - 999 / 2)) / 999)
    assert all(abs(v - grey) <= 3 for v in centre(printed)[:3]), (centre(printed), grey)
    printed.close()
    page.context.close()
    assert errors == []


def test_print_applies_the_displayed_area_and_flip(server: Any, viewer: Any, browser: Any,
                                                   study: dict[str, str]) -> None:  # fmt: skip
    """A GSPS flipping the gradient series left-right and showing its right half only: printed
    that way, the line drawn over it flipped with it."""
    state = {"label": "FLIPPED", "rotation": 0, "flip": True,
             "displayed_areas": [{"top_left": [33, 1], "bottom_right": [64, 64], "size_mode": "SCALE TO FIT"}],
             "layers": [{"name": "LINE", "order": 1}],
             "annotations": [{"layer": "LINE", "graphics": [{"type": "POLYLINE", "points": [[40, 16], [60, 16]]}]}]}  # fmt: skip
    answer = viewer.post(f"/api/series/{study['c']}/presentation-states", json=state,
                         headers={"X-CSRF-Token": viewer.csrf()})  # fmt: skip
    assert answer.status_code == 200, answer.text
    errors: list[str] = []
    page = log_in_page(browser, server, errors)
    page.goto(f"{page.base}/studies/{study['study']}/print?series={study['c']}&per_page=1")
    ready(page)
    size = page.evaluate("() => { const c = document.querySelector('.pr-figure canvas'); return [c.width, c.height]; }")
    assert size == [512, 1024]  # the 32 x 64 area, 16 canvas pixels an image pixel
    # Column x of the image (grey x * 64 / 16 = 4x at 2048/4096) is at canvas x = 16 * (64 - x) - 8.
    row = page.evaluate("""() => { const c = document.querySelector('.pr-figure canvas');
        const d = c.getContext('2d').getImageData(0, 40 * 16, c.width, 1).data;
        return Array.from({length: 32}, (_, i) => [d[(i * 16 + 8) * 4], d[(i * 16 + 8) * 4 + 2]]); }""")
    for i, (red, blue) in enumerate(row):
        column = 63 - i  # flipped: the brightest column on the left; columns 0-31 cropped away
        assert abs(red - round(column * 64 * 255 / 4095)) <= 4 and abs(blue - red) <= 4, (i, row)

    def pixel(x: float, y: float) -> list[int]:
        return page.evaluate(f"""() => [...document.querySelector('.pr-figure canvas').getContext('2d')
            .getImageData({round(16 * (64 - x))}, {round(16 * y)}, 1, 1).data]""")

    on_line, off_line = pixel(50, 16), pixel(36, 16)  # the line runs over x 40-60 of the image
    assert on_line[0] > 200 and on_line[1] > 180 and on_line[2] < 80, on_line
    assert abs(off_line[2] - off_line[0]) <= 4, off_line
    page.context.close()
    assert errors == []
