"""The viewer page (/studies/<uid>/view: view.tpl, workspace.js, viewer.js) in the system Chromium
against `lightbox serve`, studies sent by DCMTK storescu: opened from the study page and left by
Back, full screen, layouts with the pixels of each series, the strip, scrolling linked by
position, the patient's prior opened beside, the keyboard and its help."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.uid import generate_uid

from support.browser import TIMEOUT_MS, expect, log_in, new_page, shot
from support.dicomgen import make_dataset, write
from support.web import VIEWER, VIEWER_PASSWORD

pytestmark = pytest.mark.slow  # Chromium

# Each series is one flat value, windowed 2048/4096: its grey on the canvas is value / 16.
VALUES = {"a": 800, "b": 1600, "c": 2400, "d": 3200, "prior": 4000}


def series_files(folder: Path, study: str, series: str, value: int, depths: list[float], frame_of_reference: str,
                 number: int, **extra: Any) -> list[Path]:  # fmt: skip
    files = []
    for i, z in enumerate(depths):
        geometry = {"FrameOfReferenceUID": frame_of_reference, "ImagePositionPatient": [0, 0, z],
                    "ImageOrientationPatient": [1, 0, 0, 0, 1, 0]} if frame_of_reference else {}  # fmt: skip
        ds = make_dataset(study_uid=study, series_uid=series, modality="CT", rows=32, columns=32, instance_number=i + 1,
                          patient_id="VB-1", patient_name="Bella^Vet", SeriesNumber=number, WindowCenter=2048,
                          WindowWidth=4096, **geometry, **extra)  # fmt: skip
        ds.PixelData = np.full((32, 32), value, np.uint16).tobytes()
        files.append(write(ds, folder / f"{series[-12:]}-{i}.dcm"))
    return files


@pytest.fixture(scope="module")
def patient(server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CT study of four series (a: six slices 2 mm apart; b: three slices 4 mm apart in the same
    frame of reference; c, d: no position) and an older study of the same patient."""
    folder = tmp_path_factory.mktemp("viewer-page")
    uids = {name: generate_uid() for name in (*VALUES, "study", "older")}
    frame_of_reference = generate_uid()
    files = [
        *series_files(folder, uids["study"], uids["a"], VALUES["a"], [0, 2, 4, 6, 8, 10], frame_of_reference, 1),
        *series_files(folder, uids["study"], uids["b"], VALUES["b"], [0, 4, 8], frame_of_reference, 2),
        *series_files(folder, uids["study"], uids["c"], VALUES["c"], [0], "", 3),
        *series_files(folder, uids["study"], uids["d"], VALUES["d"], [0], "", 4),
        *series_files(folder, uids["older"], uids["prior"], VALUES["prior"], [0], "", 1,
                      StudyDate="20250101", StudyDescription="Prior chest"),
    ]  # fmt: skip
    result = server.storescu(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    return uids


def until(page: Any, script: str, expected: Any = True) -> Any:
    """Poll ``script`` (Playwright's evaluate: the page's CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        value = page.evaluate(script)
        if value == expected or time.monotonic() > deadline:
            assert value == expected, script
            return value
        page.wait_for_timeout(50)


def greys(page: Any) -> list[int]:
    """The red channel at the middle of each viewport's canvas."""
    return page.evaluate("""() => [...document.querySelectorAll('.ws-vp canvas')].map(c => {
        const d = c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data; return d[0]; })""")


def frames(page: Any) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('.ws-vp')].map(v => v.dataset.frame || '')")


def shown(page: Any) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('.ws-vp')].map(v => v.dataset.seriesUid || '')")


def grey(name: str) -> int:
    return round(VALUES[name] / 16)


def wait_greys(page: Any, names: list[str]) -> None:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        got = greys(page)
        if len(got) == len(names) and all(abs(g - grey(n)) <= 2 for g, n in zip(got, names, strict=True)):
            return
        assert time.monotonic() < deadline, (got, [grey(n) for n in names])
        page.wait_for_timeout(50)


def test_viewer_page(server: Any, viewer: Any, browser: Any, patient: dict[str, str]) -> None:
    dialogs: list[str] = []
    errors: list[str] = []
    page = new_page(browser, server, dialogs, viewport={"width": 1366, "height": 768})
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page.base + "/login")
    log_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_url(page.base + "/")
    study_page = f"{page.base}/studies/{patient['study']}"
    page.goto(study_page)

    # The thumbnail opens the viewer page, full window; Back returns to the study.
    page.click(f"a.view[data-series-uid='{patient['a']}']")
    page.wait_for_url(f"**/studies/{patient['study']}/view?*")
    expect(page.locator(".ws-vp .lbv-frame")).to_have_text("1 / 6")
    assert "Bella, Vet" in page.inner_text(".ws-title") and page.locator("header.top").count() == 0
    wait_greys(page, ["a"])
    page.go_back()
    page.wait_for_url(study_page)
    page.go_forward()
    expect(page.locator(".ws-vp .lbv-frame")).to_have_text("1 / 6")

    # Full screen: F, and double-click.
    page.keyboard.press("f")
    until(page, "document.fullscreenElement && document.fullscreenElement.id", "viewer")
    page.dblclick(".ws-vp canvas")
    until(page, "document.fullscreenElement === null")

    # 2×2 by key: four viewports, each with its own series' pixels; the address keeps them.
    page.keyboard.press("4")
    expect(page.locator(".ws-vp canvas")).to_have_count(4)
    wait_greys(page, ["a", "b", "c", "d"])
    assert shown(page) == [patient[n] for n in "abcd"]
    assert "layout=4" in page.url and page.url.count("series=") == 4
    shot(page, "viewer-2x2")

    # Linked scrolling: a (2 mm slices) moves b (4 mm slices) to the nearest position; c and d
    # (no frame of reference) stay.
    page.click(".ws-vp[data-index='0'] canvas")
    page.keyboard.press("End")  # a at 10 mm: b at 8 mm, its third slice
    until(page, "document.querySelector('.ws-vp[data-index=\"1\"]').dataset.frame", "3")
    assert frames(page) == ["6", "3", "1", "1"]
    page.keyboard.press("Home")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # a at 4 mm: b's second slice
    until(page, "document.querySelector('.ws-vp[data-index=\"1\"]').dataset.frame", "2")
    assert frames(page)[0] == "3"
    page.keyboard.press("l")  # unlinked: b stays
    page.keyboard.press("End")
    until(page, "document.querySelector('.ws-vp[data-index=\"0\"]').dataset.frame", "6")
    page.wait_for_timeout(300)
    assert frames(page)[1] == "2"

    # W/L synchronised on demand (S): a window typed in one viewport goes to the others of its modality.
    page.keyboard.press("s")
    expect(page.locator(".ws-sync")).to_have_attribute("aria-pressed", "true")
    page.fill(".ws-vp[data-index='0'] .lbv-center", "1000")
    page.press(".ws-vp[data-index='0'] .lbv-center", "Enter")
    until(page, "document.querySelectorAll('.ws-vp')[3].lightboxViewer.state().center", 1000)
    page.click(".ws-vp[data-index='0'] canvas")

    # Tools by key on the active viewport; the strip loads a series into it.
    page.keyboard.press("m")
    expect(page.locator(".ws-vp.ws-active button[data-tool=measure]")).to_have_class("lbv-active")
    page.keyboard.press("p")
    expect(page.locator(".ws-vp.ws-active button[data-tool=pan]")).to_have_class("lbv-active")
    page.keyboard.press("1")
    expect(page.locator(".ws-vp canvas")).to_have_count(1)
    page.click(f".ws-strip .ws-series[data-series-uid='{patient['d']}']")
    wait_greys(page, ["d"])
    assert shown(page)[0] == patient["d"] and f"series={patient['d']}" in page.url

    # The help lists the keys.
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    expect(page.locator("#help")).to_contain_text("Page Up")
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()

    # The patient's other study, newest first, opens beside the current one; its series join the strip.
    page.click(".ws-priors-toggle")
    prior = page.locator(f"#priors button[data-study-uid='{patient['older']}']")
    expect(prior).to_contain_text("1 Jan 2025")
    expect(prior).to_contain_text("Prior chest")
    prior.click()
    expect(page.locator(".ws-vp canvas")).to_have_count(2)
    wait_greys(page, ["d", "prior"])
    expect(page.locator(f".ws-strip .ws-series[data-series-uid='{patient['prior']}']")).to_have_count(1)
    assert page.locator(".ws-vp.ws-active").get_attribute("data-index") == "1"
    shot(page, "viewer-prior")

    # On a phone: nothing wider than the screen, the strip below the viewports, the image shown.
    page.set_viewport_size({"width": 360, "height": 740})
    until(page, "document.documentElement.scrollWidth <= 360")
    until(
        page,
        """(() => { const s = document.querySelector('.ws-strip').getBoundingClientRect(),
        g = document.getElementById('viewer').getBoundingClientRect(); return s.top >= g.bottom && g.height > 200; })()""",
    )
    wait_greys(page, ["d", "prior"])
    shot(page, "phone-viewer-prior")

    page.go_back()
    page.wait_for_url(study_page)
    page.context.close()
    assert errors == [] and dialogs == []


def test_viewer_page_needs_login_and_the_study(server: Any, viewer: Any, patient: dict[str, str]) -> None:
    assert viewer.get(f"/studies/{patient['study']}/view").status_code == 200
    assert viewer.get("/studies/1.2.3/view").status_code == 404
    geometry = viewer.get(f"/api/series/{patient['b']}/geometry").json()
    assert [i["position"] for i in geometry["instances"]] == [[0, 0, 0], [0, 0, 4], [0, 0, 8]]
    assert geometry["frame_of_reference"] and viewer.get(f"/api/series/{patient['c']}/geometry").json() == {
        "frame_of_reference": "",
        "instances": [{"position": None, "orientation": None}],
    }


def test_viewer_page_asks_for_the_frame_shown_first(
    server: Any, viewer: Any, browser: Any, patient: dict[str, str]
) -> None:
    """The page preloads the facts and the first frame of the series it opens, each then fetched
    once (the preloads used, under the page's own CSP); a series opened from the strip fetches
    the frame shown before the ones after it."""
    sops = {name: [i["sop_uid"] for i in viewer.get(f"/api/series/{patient[name]}/viewer").json()["instances"]]
            for name in ("a", "b")}  # fmt: skip
    facts, first = f"/api/series/{patient['a']}/viewer", f"/api/instances/{sops['a'][0]}/frames/1/raw"
    html = viewer.get(f"/studies/{patient['study']}/view?series={patient['a']}").text
    for url in (facts, first):
        assert f'<link rel="preload" href="{url}" as="fetch" crossorigin>' in html
    assert first in viewer.get(f"/studies/{patient['study']}/view").text  # no series asked: the strip's first

    dialogs: list[str] = []
    page = new_page(browser, server, dialogs, viewport={"width": 1366, "height": 768})
    page.goto(page.base + "/login")
    log_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_url(page.base + "/")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url.removeprefix(page.base)))
    page.goto(f"{page.base}/studies/{patient['study']}/view?series={patient['a']}")
    wait_greys(page, ["a"])
    assert asked.count(facts) == 1 and asked.count(first) == 1, asked

    raws = [f"/api/instances/{sop}/frames/1/raw" for sop in sops["b"]]
    page.click(f".ws-series[data-series-uid='{patient['b']}']")
    wait_greys(page, ["b"])
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while len(fetched := [url for url in asked if url in raws]) < len(raws) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert fetched == raws, fetched  # before: the two prefetched, then the one shown
    page.context.close()
    assert dialogs == []
