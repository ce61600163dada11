"""The viewer page by touch, in the system Chromium with touch emulated (a phone, 390x844, and a
tablet, 820x1180), against `lightbox serve` with a CT study sent by DCMTK storescu: pinch zoom,
two-finger pan, one finger for window/level and for scrolling through the slices, a tap on the
strip loading a series; the page itself neither scrolls nor zooms under the gestures.

Touches are sent as Chromium's input pipeline takes them (CDP Input.dispatchTouchEvent), so they
go through the browser's own gesture handling (touch-action) before the page's pointer events."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from pydicom.uid import generate_uid

from support.browser import TIMEOUT_MS, expect, log_in, new_page, shot
from support.dicomgen import make_dataset, write
from support.web import VIEWER, VIEWER_PASSWORD

pytestmark = pytest.mark.slow  # Chromium

DEVICES = {
    "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True},
    "tablet": {"viewport": {"width": 820, "height": 1180}, "device_scale_factor": 2, "is_mobile": True},
}
VIEWER_STATE = "document.querySelector('.ws-vp').lightboxViewer"


@pytest.fixture(scope="module")
def study(server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CT study: series a of twelve 64x64 slices (a gradient), series b of three."""
    folder = tmp_path_factory.mktemp("touch")
    uids = {"study": generate_uid(), "a": generate_uid(), "b": generate_uid()}
    files = []
    for name, count in (("a", 12), ("b", 3)):
        for i in range(count):
            ds = make_dataset(study_uid=uids["study"], series_uid=uids[name], modality="CT", rows=64, columns=64,
                              instance_number=i + 1, patient_id="TOUCH-1", patient_name="Milo^Cat",
                              SeriesNumber=1 if name == "a" else 2, WindowCenter=2048, WindowWidth=4096)  # fmt: skip
            ds.PixelData = (np.add.outer(np.arange(64), np.arange(64)) * 32 + i).astype(np.uint16).tobytes()
            files.append(write(ds, folder / f"{name}{i}.dcm"))
    result = server.storescu(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    return uids


def until(page: Any, script: str, check: Any) -> Any:
    """Poll ``script`` until ``check(value)`` (the page's CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        value = page.evaluate(script)
        if check(value):
            return value
        assert time.monotonic() < deadline, (script, value)
        page.wait_for_timeout(30)


def touches(page: Any, cdp: Any, start: list[tuple[float, float]], end: list[tuple[float, float]],
            steps: int = 10) -> None:  # fmt: skip
    """Fingers put down at ``start``, moved together in ``steps`` to ``end`` at about a finger's
    pace (a move every 16 ms), lifted."""

    def send(kind: str, points: list[tuple[float, float]]) -> None:
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
            {"x": x, "y": y, "id": i, "radiusX": 1, "radiusY": 1, "force": 1} for i, (x, y) in enumerate(points)]})  # fmt: skip

    send("touchStart", start)
    for k in range(1, steps + 1):
        page.wait_for_timeout(16)
        send("touchMove", [(sx + (ex - sx) * k / steps, sy + (ey - sy) * k / steps)
                           for (sx, sy), (ex, ey) in zip(start, end, strict=True)])  # fmt: skip
    send("touchEnd", [])
    page.wait_for_timeout(300)  # a person's pause before the next touch (a tap at once would stop a fling)


def state(page: Any) -> dict[str, Any]:
    return page.evaluate(f"() => ({{...{VIEWER_STATE}.state(), tx: {VIEWER_STATE}.view.tx, ty: {VIEWER_STATE}.view.ty,"
                         " page: [scrollX, scrollY, visualViewport.scale]})")  # fmt: skip


def test_touch(server: Any, viewer: Any, browser: Any, study: dict[str, str]) -> None:
    for device, settings in DEVICES.items():
        errors: list[str] = []
        dialogs: list[str] = []
        page = new_page(browser, server, dialogs, has_touch=True, **settings)
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        gestures(page, study, device)
        page.context.close()
        assert errors == [] and dialogs == [], device


def gestures(page: Any, study: dict[str, str], device: str) -> None:
    page.goto(page.base + "/login")
    log_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_url(page.base + "/")
    page.goto(f"{page.base}/studies/{study['study']}/view?series={study['a']}")
    expect(page.locator(".ws-vp .lbv-frame")).to_have_text("1 / 12")
    until(page, f"{VIEWER_STATE}.current !== null", bool)
    box = page.locator(".ws-vp canvas").bounding_box()
    assert box["width"] > 300 and box["height"] > 250, (device, box)  # room to work in
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    before = state(page)

    # Pinch out: the fingers three times as far apart, the image about three times as large.
    touches(page, cdp, [(x - 40, y), (x + 40, y)], [(x - 120, y), (x + 120, y)])
    zoomed = until(page, f"{VIEWER_STATE}.view.scale", lambda s: s > before["scale"] * 2.5)
    assert zoomed < before["scale"] * 3.5, (device, before, zoomed)

    # Two fingers moved together: the image follows them, at the same size.
    moved = state(page)
    touches(page, cdp, [(x - 50, y - 20), (x + 50, y - 20)], [(x + 10, y + 20), (x + 110, y + 20)])
    panned = until(page, f"{VIEWER_STATE}.view.tx", lambda tx: abs(tx - moved["tx"] - 60) < 3)
    after = state(page)
    assert abs(after["ty"] - moved["ty"] - 40) < 3 and abs(after["scale"] - moved["scale"]) < 1e-6, (moved, after)
    assert panned and after["page"] == [0, 0, 1], after  # the page neither scrolled nor zoomed

    # One finger, W/L tool: right widens the window, down raises the level; the entry boxes follow.
    page.tap(".ws-vp button[data-tool=wl]")
    expect(page.locator(".ws-vp button[data-tool=wl]")).to_have_class("lbv-active")
    level, width = float(page.input_value(".lbv-center")), float(page.input_value(".lbv-width"))
    touches(page, cdp, [(x, y)], [(x + 50, y + 30)])
    until(page, "Number(document.querySelector('.lbv-width').value)", lambda w: w > width + 500)
    assert float(page.input_value(".lbv-center")) > level + 300
    assert abs(state(page)["tx"] - after["tx"]) < 1e-6  # not panned

    # One finger, Scroll tool: down moves on through the slices, up back.
    page.tap(".ws-vp button[data-tool=scroll]")
    expect(page.locator(".ws-vp button[data-tool=scroll]")).to_have_class("lbv-active")
    touches(page, cdp, [(x, y - 40)], [(x, y + 40)])  # 80 px: 10 slices on
    until(page, "document.querySelector('.ws-vp').dataset.frame", lambda f: f == "11")
    touches(page, cdp, [(x, y + 20)], [(x, y - 20)])  # 40 px: 5 back
    until(page, "document.querySelector('.ws-vp').dataset.frame", lambda f: f == "6")
    assert state(page)["page"] == [0, 0, 1]
    shot(page, f"touch-{device}")

    # A tap on a thumbnail of the strip loads its series.
    page.tap(f".ws-strip .ws-series[data-series-uid='{study['b']}']")
    expect(page.locator(".ws-vp .lbv-frame")).to_have_text("1 / 3")
    assert page.get_attribute(".ws-vp", "data-series-uid") == study["b"]
