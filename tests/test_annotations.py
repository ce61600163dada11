"""Measurements, annotations and presentation states in the viewer page (annotate.js, states.js,
viewer.js), in the system Chromium against `lightbox serve`, the images sent by DCMTK storescu:
values against known geometry and pixel spacing (Pixel Spacing, Imager Pixel Spacing with and
without ERMF, an enhanced CT's functional groups, a calibration line), select/move/delete, the
export with the annotations burnt in, a state saved (read back with pydicom, reopened in a fresh
page) and one made by DCMTK's dcmpsmk applied."""

from __future__ import annotations

import io
import math
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from support.browser import TIMEOUT_MS, log_in
from support.dicomgen import make_dataset, write
from support.scu import rows
from support.tools import dcmtk
from support.web import VIEWER, VIEWER_PASSWORD

pytestmark = pytest.mark.slow  # Chromium

V = "document.querySelector('.ws-vp').lightboxViewer"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def image(folder: Path, name: str, study: str, rows_: int, columns: int, values: np.ndarray, **extra: Any) -> Path:
    ds = make_dataset(study_uid=study, rows=rows_, columns=columns, patient_id="VET-9", patient_name="Rex^Dog", **extra)
    ds.PixelData = values.astype(np.uint16).tobytes()
    return write(ds, folder / f"{name}.dcm")


@pytest.fixture(scope="module")
def images(server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CT (0.5 mm pixels, 40 HU in rows 20-79 and columns 20-99, 0 HU around), radiographs with
    Imager Pixel Spacing 0.2 mm (one with ERMF 1.25), an enhanced CT (0.25 mm in its shared
    functional groups only), an uncalibrated image, and an image with a GSPS made by dcmpsmk."""
    folder = tmp_path_factory.mktemp("annotations")
    study = generate_uid()
    ct = np.full((160, 200), 1024)
    ct[20:80, 20:100] = 1064
    ramp = np.tile(np.arange(200) * 20, (160, 1))
    files = {
        "ct": image(folder, "ct", study, 160, 200, ct, modality="CT", PixelSpacing=[0.5, 0.5], RescaleSlope=1,
                    RescaleIntercept=-1024, RescaleType="HU", WindowCenter=40, WindowWidth=400),
        "dx": image(folder, "dx", study, 160, 200, ramp, modality="DX", ImagerPixelSpacing=[0.2, 0.2]),
        "ermf": image(folder, "ermf", study, 160, 200, ramp, modality="DX", ImagerPixelSpacing=[0.2, 0.2],
                      EstimatedRadiographicMagnificationFactor=1.25),
        "plain": image(folder, "plain", study, 100, 100, ramp[:100, :100]),
    }  # fmt: skip
    enhanced = make_dataset(study_uid=study, rows=64, columns=64, modality="CT", patient_id="VET-9",
                            patient_name="Rex^Dog", NumberOfFrames=2, WindowCenter=40, WindowWidth=400)  # fmt: skip
    enhanced.SOPClassUID = ENHANCED_CT
    measures, shared = Dataset(), Dataset()
    measures.PixelSpacing = [0.25, 0.25]
    measures.SliceThickness = 1
    shared.PixelMeasuresSequence = [measures]
    enhanced.SharedFunctionalGroupsSequence = [shared]
    enhanced.PixelData = np.full((2, 64, 64), 1000, np.uint16).tobytes()
    files["enhanced"] = write(enhanced, folder / "enhanced.dcm")
    # dcmpsmk takes the image's window (40/400); the image archived says 1000/3000: the viewer
    # shows 40/400 only if it applied DCMTK's state.
    theirs = make_dataset(study_uid=study, rows=64, columns=64, modality="CT", patient_id="VET-9", patient_name="Rex^Dog",
                          WindowCenter=40, WindowWidth=400)  # fmt: skip
    theirs.PixelData = np.full((64, 64), 30, np.uint16).tobytes()
    source = write(theirs, folder / "theirs-source.dcm")
    made = folder / "dcmpsmk.dcm"
    subprocess.run([dcmtk("dcmpsmk"), "+Vw", str(source), str(made)], check=True, timeout=60)
    theirs.WindowCenter, theirs.WindowWidth = 1000, 3000
    files["theirs"] = write(theirs, folder / "theirs.dcm")
    result = server.storescu(*files.values(), made)
    assert result.returncode == 0 and result.stderr.count("Store Response (Success)") == len(files) + 1, result.stderr
    uids = {name: str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID) for name, path in files.items()}
    uids["study"] = study
    uids["dcmpsmk"] = str(pydicom.dcmread(made, stop_before_pixels=True).SOPInstanceUID)
    return uids


@pytest.fixture(scope="module")
def context(server: Any, viewer: Any, browser: Any) -> Any:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{server.http_port}/login")
    log_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_url(f"http://127.0.0.1:{server.http_port}/")
    page.close()
    yield context
    context.close()


class Viewer:
    """One viewer page on a series; prompts answered from ``answers``."""

    def __init__(self, context: Any, server: Any, study: str, series: str) -> None:
        self.page = context.new_page()
        self.errors: list[str] = []
        self.answers: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("dialog", lambda dialog: dialog.accept(self.answers.pop(0)))
        self.page.goto(f"http://127.0.0.1:{server.http_port}/studies/{study}/view?series={series}")
        self.until(f"!!({V} && {V}.current && {V}.states.list.options.length)")

    def until(self, script: str, expected: Any = True) -> Any:
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while True:
            value = self.page.evaluate(script)
            if value == expected or time.monotonic() > deadline:
                assert value == expected, (script, value)
                return value
            self.page.wait_for_timeout(50)

    def point(self, x: float, y: float) -> tuple[float, float]:
        return tuple(self.page.evaluate(f"{V}.imageToClient({x}, {y})"))

    def tool(self, name: str) -> None:
        if name == "measure":
            self.page.click(".ws-vp button[data-tool=measure]")
        else:
            self.page.select_option(".ws-vp .lbv-tools", name)

    def stroke(self, a: tuple[float, float], b: tuple[float, float] | None = None) -> None:
        self.page.mouse.move(*self.point(*a))
        self.page.mouse.down()
        if b is not None:
            self.page.mouse.move(*self.point(*b), steps=4)
        self.page.mouse.up()

    def items(self) -> list[list[Any]]:
        return self.page.evaluate(f"{V}.notes.items.map(i => [i.kind, {V}.notes.text(i), i.points])")

    def last(self) -> str:
        return self.items()[-1][1]

    def state(self) -> dict[str, Any]:
        return self.page.evaluate(f"{V}.state()")

    def close(self) -> None:
        self.page.close()
        assert self.errors == []


def numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", text)]


def near(text: str, expected: list[float], tolerance: float = 0.25) -> bool:
    got = numbers(text)
    return len(got) >= len(expected) and all(abs(g - e) <= tolerance for g, e in zip(got, expected, strict=False))


def download(page: Any) -> Image.Image:
    with page.expect_download() as done:
        page.click(".ws-vp .lbv-export-png")
    return Image.open(io.BytesIO(Path(done.value.path()).read_bytes())).convert("RGB")


def test_measurements_annotations_export_and_saved_state(server: Any, context: Any, images: dict[str, str]) -> None:
    v = Viewer(context, server, images["study"], images["ct"])
    v.tool("measure")
    v.stroke((10, 10), (110, 10))
    assert near(v.last(), [50.0]) and v.last().endswith(" mm")  # 100 px of 0.5 mm
    v.tool("angle")
    v.stroke((50, 100), (100, 100))
    v.stroke((100, 50))
    assert near(v.last(), [90.0]) and v.last().endswith("°")
    v.tool("cobb")
    v.stroke((10, 150), (60, 150))
    v.stroke((100, 150), (150, 100))
    assert v.last().startswith("Cobb") and near(v.last(), [45.0])
    v.tool("norberg")
    v.stroke((60, 60), (70, 60))  # a femoral head: centre, then rim
    v.stroke((140, 60), (150, 60))
    v.stroke((30, 30))  # each head's acetabular rim point
    v.stroke((170, 30))
    assert v.last().startswith("Norberg") and near(v.last(), [135.0, 135.0])
    v.tool("tplo")
    v.stroke((100, 100), (150, 80))  # tibial plateau, then the functional axis
    v.stroke((120, 60), (120, 150))
    assert v.last().startswith("TPA") and near(v.last(), [math.degrees(math.atan2(20, 50))])
    v.tool("ellipse")
    v.stroke((30, 30), (90, 70))  # inside the 40 HU block
    assert near(v.last(), [40.0, 0.0, 40, 40, math.pi / 4 * 60 * 40 * 0.25], 0.3) and "HU" in v.last()
    v.tool("rect")
    v.stroke((30, 30), (50, 70))
    assert near(v.last(), [40.0, 0.0, 40, 40, 200.0], 0.3) and "mm²" in v.last()
    v.answers.append("Left stifle")
    v.tool("text")
    v.stroke((150, 20))
    v.tool("arrow")
    v.stroke((190, 150), (160, 120))
    kinds = [item[0] for item in v.items()]
    assert kinds == ["length", "angle", "cobb", "norberg", "tplo", "ellipse", "rect", "text", "arrow"]
    assert v.items()[7][1] == "Left stifle", (v.page.evaluate(f"JSON.stringify({V}.notes.items[7])"), v.answers)

    # Select, move a handle, delete with the Delete key.
    v.tool("select")
    v.stroke((110, 10), (130, 10))
    assert near(v.items()[0][1], [60.0])
    assert v.page.inner_text(".ws-vp .lbv-br") == v.items()[0][1]
    v.stroke((170, 135), (175, 135))  # the arrow, moved whole
    assert v.items()[-1][2][0] == pytest.approx([195, 150], abs=0.3)
    v.page.keyboard.press("Delete")
    assert [item[0] for item in v.items()][-1] == "text"

    # The export: the same image, the annotations burnt in only when asked.
    plain = download(v.page)
    v.page.check(".ws-vp .lbv-burn-in")
    burnt = download(v.page)
    assert plain.size == burnt.size == (200, 160)
    assert plain.getpixel((70, 10)) == plain.getpixel((70, 12))  # the length line, not there
    r, g, b = burnt.getpixel((70, 10))
    assert r > 200 and g > 150 and b < 100, (r, g, b)
    assert burnt.getpixel((5, 140)) == plain.getpixel((5, 140))  # away from every annotation

    # Saved: a window, a flip and a rotation with the annotations.
    v.page.fill(".ws-vp .lbv-center", "50")
    v.page.fill(".ws-vp .lbv-width", "350")
    v.page.press(".ws-vp .lbv-width", "Enter")
    v.page.click(".ws-vp .lbv-flip")
    v.page.click(".ws-vp .lbv-rotate")
    v.page.click(".ws-vp .lbv-save")
    v.until("!!document.querySelector('.ws-vp').dataset.savedState")
    sop = v.page.evaluate("document.querySelector('.ws-vp').dataset.savedState")
    drawn = v.items()
    v.close()

    ((key,),) = rows(server.data, "SELECT file_key FROM instance WHERE sop_uid = ?", sop)
    ds = pydicom.dcmread(server.data / "storage" / key)
    assert (
        ds.SOPClassUID == GSPS
        and ds.ContentCreatorName == VIEWER
        and ds.ImageHorizontalFlip == "Y"
        and ds.ImageRotation == 90
    )
    (voi,) = ds.SoftcopyVOILUTSequence
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (50.0, 350.0)
    (area,) = ds.DisplayedAreaSelectionSequence
    assert area.PresentationSizeMode == "SCALE TO FIT" and list(area.DisplayedAreaBottomRightHandCorner) == [200, 160]
    layers = {item.GraphicLayer: item for item in ds.GraphicAnnotationSequence}
    assert set(layers) == {"LENGTH", "ANGLE", "COBB", "NORBERG", "TPLO", "ELLIPSE ROI", "RECTANGLE ROI", "TEXT"}
    (length,) = layers["LENGTH"].GraphicObjectSequence
    assert length.GraphicType == "POLYLINE" and length.GraphicAnnotationUnits == "PIXEL"
    assert [float(x) for x in length.GraphicData] == pytest.approx([c for p in drawn[0][2] for c in p], abs=1e-3)
    assert near(layers["LENGTH"].TextObjectSequence[0].UnformattedTextValue, [60.0])
    circles = [g for g in layers["NORBERG"].GraphicObjectSequence if g.GraphicType == "CIRCLE"]
    assert len(circles) == 2 and [float(x) for x in circles[0].GraphicData] == pytest.approx([60, 60, 70, 60], abs=0.3)
    (ellipse,) = layers["ELLIPSE ROI"].GraphicObjectSequence
    assert ellipse.GraphicType == "ELLIPSE" and [float(x) for x in ellipse.GraphicData] == pytest.approx(
        [30, 50, 90, 50, 60, 30, 60, 70], abs=0.3
    )
    assert "HU" in layers["ELLIPSE ROI"].TextObjectSequence[0].UnformattedTextValue
    assert layers["TEXT"].TextObjectSequence[0].UnformattedTextValue == "Left stifle"

    # Reopened in a fresh page: the newest state is applied, the annotations drawn again.
    again = Viewer(context, server, images["study"], images["ct"])
    again.until(f"{V}.notes.items.length", len(drawn))
    assert [(k, t) for k, t, _ in again.items()] == [(k, t) for k, t, _ in drawn]
    assert again.page.input_value(".ws-vp .lbv-states") == sop
    state = again.state()
    assert (state["center"], state["width"], state["flip"], state["rotation"]) == (50, 350, True, 90)
    x, y = again.page.evaluate(f"{V}.imageToCanvas(70, 10).map(v => Math.round(v * devicePixelRatio))")
    around = again.page.evaluate(
        f"Array.from(document.querySelector('.ws-vp canvas').getContext('2d').getImageData({x - 1}, {y - 1}, 3, 3).data)"
    )
    pixels = [around[i : i + 3] for i in range(0, len(around), 4)]
    assert any(r > 200 and g > 150 and b < 100 for r, g, b in pixels), pixels  # the length line, yellow
    again.close()


def test_spacing_from_every_source_and_calibration(
    server: Any, viewer: Any, context: Any, images: dict[str, str]
) -> None:
    info = {
        name: viewer.get(f"/api/series/{images[name]}/viewer").json()["image"] for name in ("enhanced", "dx", "ermf")
    }
    assert info["enhanced"]["pixel_spacing"] == [0.25, 0.25]
    assert info["dx"]["pixel_spacing"] is None and info["dx"]["imager_pixel_spacing"] == [0.2, 0.2]
    assert info["ermf"]["estimated_magnification"] == 1.25
    # 60 px (the enhanced image is 64 wide) of 0.25 mm; 100 px of 0.2 mm, at the detector or
    # divided by the estimated magnification.
    expected = {"enhanced": (60, "15.0 mm"), "dx": (100, "20.0 mm (at detector)"),
                "ermf": (100, "16.0 mm (corrected for magnification)")}  # fmt: skip
    for name, (pixels, text) in expected.items():
        v = Viewer(context, server, images["study"], images[name])
        v.tool("measure")
        v.stroke((2, 30), (2 + pixels, 30))
        assert v.last() == text, name
        v.close()

    v = Viewer(context, server, images["study"], images["plain"])
    v.tool("measure")
    v.stroke((10, 20), (50, 20))
    assert v.last() == "40.0 px (uncalibrated)"
    v.answers.append("20")
    v.tool("calibrate")
    v.stroke((10, 50), (90, 50))  # 80 px are 20 mm
    assert v.items()[0][1] == "10.0 mm (calibrated)" and v.items()[1][1] == "Calibration 20 mm", (v.items(), v.errors)
    v.close()


def test_a_state_made_by_dcmpsmk_is_applied(server: Any, context: Any, images: dict[str, str]) -> None:
    v = Viewer(context, server, images["study"], images["theirs"])
    v.until(f"{V}.state().width", 400)
    assert v.state()["center"] == 40 and v.page.input_value(".ws-vp .lbv-states") == images["dcmpsmk"]
    v.page.select_option(".ws-vp .lbv-states", "")  # as stored: the image's own window
    v.until(f"{V}.state().width", 3000)
    v.close()
