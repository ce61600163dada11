"""The viewer (webui/static/viewer.js) in the system Chromium, driven by Playwright, against
the frame routes served over HTTP by waitress on 127.0.0.1."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bottle
import numpy as np
import pytest
import waitress
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from appliance.archive import Archive
from appliance.web import frames
from support.dicomgen import make_dataset, write
from support.imagegen import add_overlay, gradient_image

pytestmark = pytest.mark.slow  # Chromium

STATIC = Path(__file__).resolve().parents[1] / "webui" / "static"
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/static/viewer.css"><script src="/static/lightbox.js"></script><script src="/static/annotate.js"></script>
<script src="/static/states.js"></script><script src="/static/viewer.js"></script></head>
<body style="margin:0"><div id="viewer" style="width:900px;height:640px"></div>
<script>LightboxViewer.open(document.getElementById("viewer"), new URLSearchParams(location.search).get("series"));</script>
</body></html>"""


def write_corpus(folder: Path) -> dict[str, str]:
    """A 5-slice CT-like series with 0.5 mm pixels, a 10-frame colour loop, an uncalibrated image,
    a grayscale and a colour image with an overlay plane (a filled block)."""
    series = {name: generate_uid() for name in ("ct", "us", "plain", "overlay", "colour-overlay")}
    study = generate_uid()
    y, x = np.mgrid[0:96, 0:128]
    for i in range(5):
        ds = make_dataset(study_uid=study, series_uid=series["ct"], modality="CT", rows=96, columns=128, instance_number=i + 1,
                          PixelSpacing=[0.5, 0.5], WindowCenter=1000, WindowWidth=2000, SeriesDescription="Axial")  # fmt: skip
        ds.PixelData = ((x * 16 + 400 * i) % 4096).astype(np.uint16).tobytes()  # each slice different
        write(ds, folder / f"ct{i}.dcm")
    region = Dataset()  # the left half is calibrated at 0.1 mm per pixel
    region.RegionLocationMinX0, region.RegionLocationMinY0, region.RegionLocationMaxX1, region.RegionLocationMaxY1 = (
        0,
        0,
        31,
        47,
    )
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX = region.PhysicalDeltaY = 0.01
    loop = make_dataset(study_uid=study, series_uid=series["us"], modality="US", rows=48, columns=64, NumberOfFrames=10,
                        FrameTime=50.0, SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0,
                        BitsAllocated=8, BitsStored=8, HighBit=7, SequenceOfUltrasoundRegions=[region])  # fmt: skip
    loop.PixelData = np.stack(
        [np.full((48, 64, 3), (25 * i, 100, 255 - 25 * i), np.uint8) for i in range(10)]
    ).tobytes()
    write(loop, folder / "us.dcm")
    plain = make_dataset(study_uid=study, series_uid=series["plain"], rows=64, columns=64)
    write(plain, folder / "plain.dcm")
    grey = gradient_image()
    colour = make_dataset(SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0,
                          BitsAllocated=8, BitsStored=8, HighBit=7, rows=48, columns=64)  # fmt: skip
    colour.PixelData = np.full((48, 64, 3), (60, 90, 120), np.uint8).tobytes()
    for name, ds in (("overlay", grey), ("colour-overlay", colour)):
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series[name]
        add_overlay(ds, 0x6000, [np.ones((20, 30), bool)], (21, 21))  # rows 20-39, columns 20-49
        write(ds, folder / f"{name}.dcm")
    return series


def guard(handler: Any) -> Any:
    def checked(*args: Any, **kwargs: Any) -> Any:
        if bottle.request.get_cookie("session") != "test":
            return bottle.HTTPResponse('{"error": "login required"}', 401)
        return handler(*args, **kwargs)

    return checked


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("viewer")
    (root / "in").mkdir()
    series = write_corpus(root / "in")
    archive = Archive(root / "data")
    assert archive.import_paths([root / "in"]).rejected_count == 0
    app = bottle.Bottle()
    frames.install(app, archive, guard)
    app.get("/static/<name>")(lambda name: bottle.static_file(name, root=str(STATIC)))
    app.get("/")(lambda: PAGE)
    # Presentation states are tested against the real service (test_annotations.py): none here.
    app.get("/api/series/<uid>/presentation-states")(guard(lambda uid: {"presentation_states": []}))
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=6)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}", series
    server.close()
    thread.join(10)
    archive.close()


@pytest.fixture
def open_series(site: tuple[str, dict[str, str]], browser: Any) -> Iterator[Any]:
    base, series = site
    context = browser.new_context(accept_downloads=True, viewport={"width": 1000, "height": 760}, has_touch=True)
    context.add_cookies([{"name": "session", "value": "test", "url": base}])
    errors: list[str] = []

    def open_(name: str, frames_total: int) -> Any:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{base}/?series={series[name]}")
        page.wait_for_function(f"document.querySelector('.lbv-frame')?.textContent === '1 / {frames_total}'")
        page.wait_for_function("document.getElementById('viewer').lightboxViewer.current !== null")
        return page

    yield open_
    context.close()
    assert errors == []


def state(page: Any) -> dict[str, Any]:
    return page.evaluate("document.getElementById('viewer').lightboxViewer.state()")


def canvas_sum(page: Any) -> int:
    return page.evaluate("""() => { const c = document.querySelector('.lbv-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + 3 * d[i + 2]; return s; }""")


def pixel(page: Any, x: float, y: float) -> list[int]:
    """The canvas's colour at image pixel (x, y)."""
    return page.evaluate(f"""() => {{ const v = document.getElementById('viewer').lightboxViewer;
        const [cx, cy] = v.imageToCanvas({x} + 0.5, {y} + 0.5), ratio = window.devicePixelRatio || 1;
        const d = v.canvas.getContext('2d').getImageData(Math.floor(cx * ratio), Math.floor(cy * ratio), 1, 1).data;
        return [d[0], d[1], d[2]]; }}""")


def image_point(page: Any, x: float, y: float) -> tuple[float, float]:
    return tuple(page.evaluate(f"document.getElementById('viewer').lightboxViewer.imageToClient({x}, {y})"))


def test_scroll_frames_with_keys_wheel_and_slider(open_series: Any) -> None:
    page = open_series("ct", 5)
    first = canvas_sum(page)
    page.focus(".lbv")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("document.querySelector('.lbv-frame').textContent === '2 / 5'")
    assert state(page)["frame"] == 2
    x, y = image_point(page, 64, 48)
    page.mouse.move(x, y)
    page.mouse.wheel(0, 100)
    page.wait_for_function("document.querySelector('.lbv-frame').textContent === '3 / 5'")
    page.fill(".lbv-slider", "5")
    page.wait_for_function("document.querySelector('.lbv-frame').textContent === '5 / 5'")
    page.wait_for_function(
        "document.getElementById('viewer').lightboxViewer.current.entry.frame === 1 && "
        "document.getElementById('viewer').lightboxViewer.index === 4"
    )
    assert canvas_sum(page) != first  # another slice is shown
    assert "Frame 5 / 5" in page.inner_text(".lbv-tr") and "Image 5 / 5" in page.inner_text(".lbv-tr")
    assert "Doe, Jane" in page.inner_text(".lbv-tl")


def test_window_level_drag_presets_invert_reset(open_series: Any) -> None:
    page = open_series("ct", 5)
    before, pixels = state(page), canvas_sum(page)
    assert (before["center"], before["width"]) == (1000, 2000)
    x, y = image_point(page, 64, 48)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 60, steps=6)
    page.mouse.up()
    after = state(page)
    assert after["width"] > before["width"] and after["center"] > before["center"]
    assert canvas_sum(page) != pixels
    assert f"W {round(after['width'])} L {round(after['center'])}" in page.inner_text(".lbv-bl")
    page.select_option(".lbv-presets", label="Bone (480/2500)")
    assert (state(page)["center"], state(page)["width"]) == (480, 2500)
    page.click(".lbv-invert")
    assert state(page)["invert"] is True
    page.click(".lbv-reset")
    assert (state(page)["center"], state(page)["width"], state(page)["invert"]) == (1000, 2000, False)
    assert canvas_sum(page) == pixels


def test_narrow_ct_window_moves_by_the_pixel_is_typed_and_shown(open_series: Any) -> None:
    page = open_series("ct", 5)
    page.select_option(".lbv-presets", label="Brain (40/80)")
    assert page.input_value(".lbv-center") == "40" and page.input_value(".lbv-width") == "80"
    x, y = image_point(page, 64, 48)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 10, y, steps=10)  # ten pixels right: about 3 HU wider, not 80
    page.mouse.up()
    assert 80 < state(page)["width"] <= 84 and state(page)["center"] == 40
    # Typed: centre 50, width 100 puts 0..99 on the grey scale; image column 3 holds 48.
    page.fill(".lbv-center", "50")
    page.fill(".lbv-width", "100")
    page.press(".lbv-width", "Enter")
    assert (state(page)["center"], state(page)["width"]) == (50, 100)
    assert all(abs(c - 124) <= 2 for c in pixel(page, 3, 10))
    assert "W 100 L 50" in page.inner_text(".lbv-bl")
    page.mouse.move(*image_point(page, 3.5, 10.5))  # the value under the pointer
    assert "(3, 10) 48 HU" in page.inner_text(".lbv-bl")


def test_zoom_fit_and_actual_size(open_series: Any) -> None:
    page = open_series("ct", 5)
    fitted = state(page)["scale"]
    assert fitted == pytest.approx(min(900 / 128, (640 - 90) / 96), rel=0.2)
    page.click(".lbv-actual")
    assert state(page)["scale"] == 1
    x, y = image_point(page, 64, 48)
    page.mouse.move(x, y)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -100)
    page.keyboard.up("Control")
    assert state(page)["scale"] > 1
    page.click(".lbv-fit")
    assert state(page)["scale"] == pytest.approx(fitted)


def measure(page: Any, a: tuple[float, float], b: tuple[float, float]) -> str:
    page.click("button[data-tool=measure]")
    (ax, ay), (bx, by) = image_point(page, *a), image_point(page, *b)
    page.mouse.move(ax, ay)
    page.mouse.down()
    page.mouse.move(bx, by, steps=4)
    page.mouse.up()
    return state(page)["measurement"]


def test_measure_a_known_distance(open_series: Any) -> None:
    page = open_series("ct", 5)
    assert measure(page, (10, 20), (110, 20)) == "50.0 mm"  # 100 pixels of 0.5 mm
    assert page.inner_text(".lbv-br") == "50.0 mm"


def test_measure_in_an_ultrasound_region(open_series: Any) -> None:
    page = open_series("us", 10)
    assert measure(page, (2, 5), (2, 45)) == "4.0 mm"  # 40 pixels of 0.1 mm, inside the region
    assert measure(page, (10, 10), (60, 10)).endswith("(uncalibrated)")  # leaves the region


def test_measure_without_calibration_says_so(open_series: Any) -> None:
    page = open_series("plain", 1)
    assert measure(page, (0, 0), (30, 40)) == "50.0 px (uncalibrated)"


def test_cine_plays_and_loops_at_the_frame_rate(open_series: Any) -> None:
    page = open_series("us", 10)
    page.click(".lbv-play")
    page.wait_for_function("document.getElementById('viewer').lightboxViewer.index >= 9", timeout=5000)
    page.wait_for_function("document.getElementById('viewer').lightboxViewer.index < 5", timeout=5000)  # looped
    assert "Cine 20 fps" in page.inner_text(".lbv-tr")
    page.click(".lbv-play")
    assert state(page)["playing"] is False


def test_export_image_and_cine(open_series: Any) -> None:
    page = open_series("us", 10)
    with page.expect_download() as download:
        page.click(".lbv-export-png")
    exported = Image.open(download.value.path())
    assert exported.size == (64, 48)
    colour = exported.convert("RGB").getpixel((10, 10))  # frame 1, through a JPEG of quality 92
    assert all(abs(a - b) <= 3 for a, b in zip(colour, (0, 100, 255), strict=True))
    with page.expect_download() as download:
        page.click(".lbv-export-gif")
    animated = Image.open(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert animated.n_frames == 10 and download.value.suggested_filename == "cine-1.gif"


def test_pinch_zooms_and_one_finger_drags(open_series: Any) -> None:
    page = open_series("ct", 5)
    before = state(page)
    cdp = page.context.new_cdp_session(page)
    x, y = image_point(page, 64, 48)

    def touch(kind: str, points: list[tuple[float, float]]) -> None:
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": kind, "touchPoints": [{"x": px, "y": py, "id": i} for i, (px, py) in enumerate(points)]},
        )

    touch("touchStart", [(x - 40, y), (x + 40, y)])
    for spread in range(40, 160, 20):
        touch("touchMove", [(x - spread, y), (x + spread, y)])
    touch("touchEnd", [])
    assert state(page)["scale"] > before["scale"] * 2
    touch("touchStart", [(x, y)])  # one finger: the active tool, window/level
    for step in range(1, 6):
        touch("touchMove", [(x + 20 * step, y)])
    touch("touchEnd", [])
    assert state(page)["width"] > before["width"]


@pytest.mark.parametrize("name", ["overlay", "colour-overlay"])
def test_overlays_shown_and_hidden(open_series: Any, name: str) -> None:
    """Grayscale frames come raw and colour ones rendered without overlays: either way the
    overlay layer goes over them in white, and the button takes it away and back."""
    page = open_series(name, 1)
    assert state(page)["overlays"] is True and not page.is_disabled(".lbv-overlays")
    assert pixel(page, 30, 25) == [255, 255, 255]
    under = pixel(page, 30, 55 if name == "overlay" else 45)  # below the block: the image itself
    with page.expect_download() as download:
        page.click(".lbv-export-png")
    assert Image.open(download.value.path()).convert("RGB").getpixel((30, 25)) == (255, 255, 255)
    page.click(".lbv-overlays")
    assert state(page)["overlays"] is False and page.get_attribute(".lbv-overlays", "aria-pressed") == "false"
    hidden = pixel(page, 30, 25)
    assert max(hidden) < 200 and (name == "overlay" or hidden == under)
    assert "overlays=0" in page.get_attribute(".lbv-export-gif", "href")
    with page.expect_download() as download:
        page.click(".lbv-export-png")
    assert max(Image.open(download.value.path()).convert("RGB").getpixel((30, 25))) < 200
    page.click(".lbv-overlays")
    assert pixel(page, 30, 25) == [255, 255, 255] and "overlays=0" not in page.get_attribute(".lbv-export-gif", "href")


def test_overlay_button_is_off_without_overlays(open_series: Any) -> None:
    page = open_series("ct", 5)
    assert page.is_disabled(".lbv-overlays")


def test_without_login_the_viewer_says_so(site: tuple[str, dict[str, str]], browser: Any) -> None:
    base, series = site
    page = browser.new_page()
    page.goto(f"{base}/?series={series['ct']}")
    page.wait_for_function("document.querySelector('.lbv-status')?.textContent.includes('login required')")
    page.close()
