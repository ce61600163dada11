"""Videos, documents and reports on the study page, in the system Chromium (Playwright): every
instance shown for what it is, with a real picture or icon; videos play in a <video>, the
PDF opens as a PDF, the report reads as text.  Screenshots go to tests/artifacts/."""

from __future__ import annotations

import subprocess
import time

import pytest
from pydicom import dcmread

from support.browser import expect, log_in, new_page, shot
from support.dicomgen import make_study
from support.mediagen import FFMPEG, H264_HP41, MPEG2_MPML, make_stream, odd_pdf, pdf_dicom, sr_dicom, video_dicom
from support.tools import dcmtk, require
from support.web import ADMIN, ADMIN_PASSWORD

pytestmark = pytest.mark.slow  # Chromium

HOSTILE = "<img src=x onerror=alert(3)>"


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    require(FFMPEG)  # the server makes MP4s with it
    return {"dicom_workers": 0}


@pytest.fixture(scope="module")
def study(server, tmp_path_factory) -> dict[str, str]:
    """A clinic's mixed study: a 10-frame image, an H.264 and an MPEG-2 clip, a PDF, a report and
    a presentation state, each in its own series."""
    folder = tmp_path_factory.mktemp("mixed")
    loop = make_study(folder / "image", 1, patient_name="Mixed^Max", patient_id="MIX-1", rows=64, columns=64,
                      NumberOfFrames=10)[0]  # fmt: skip
    ds = dcmread(loop)
    ds.PixelData = ds.PixelData * 10
    ds.save_as(loop)
    study_uid = str(ds.StudyInstanceUID)
    same = {"study_uid": study_uid, "patient_name": "Mixed^Max", "patient_id": "MIX-1"}
    h264 = video_dicom(make_stream(folder / "h264.ts", "h264", "ts"), folder / "h264.dcm", H264_HP41, **same)
    mpeg2 = video_dicom(make_stream(folder / "clip.m2v", "mpeg2", "raw"), folder / "mpeg2.dcm", MPEG2_MPML,
                        instance_number=2, **same)  # fmt: skip
    odd_pdf(folder / "letter.pdf")
    pdf = pdf_dicom(folder / "letter.pdf", folder / "pdf.dcm", study_from=loop)
    report = sr_dicom(folder / "sr.dcm", study_uid, patient_id="MIX-1", patient_name="Mixed^Max", text=HOSTILE)
    state = folder / "gsps.dcm"
    subprocess.run([dcmtk("dcmpsmk"), str(loop), str(state)], check=True, timeout=60)
    sent = [(loop, ()), (h264, ("-xn",)), (mpeg2, ("-xm",)), (pdf, ()), (report, ()), (state, ())]
    for path, syntax in sent:
        result = server.storescu(path, extra=("-R", *syntax))
        assert result.returncode == 0 and "Received Store Response (Success)" in result.stderr, result.stderr
    sop = lambda path: str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)  # noqa: E731
    return {"uid": study_uid, "h264": sop(h264), "mpeg2": sop(mpeg2)}


def loaded_pictures(page) -> list[tuple[str, int]]:
    """Every <img> of the page once loaded, with its natural width (0: a broken image)."""
    pictures = page.locator("img")
    for n in range(pictures.count()):
        expect(pictures.nth(n)).to_have_js_property("complete", True)
    return [(pictures.nth(n).get_attribute("src"), pictures.nth(n).evaluate("i => i.naturalWidth"))
            for n in range(pictures.count())]  # fmt: skip


def wait_playing(page) -> dict:
    """The player's <video> once it has frames to show, then playing (muted: no gesture needed)."""
    video = page.locator("#viewer video")
    expect(video).to_have_count(1, timeout=120_000)  # an MPEG-2 clip is transcoded first
    deadline = time.monotonic() + 60
    while video.evaluate("v => v.readyState") < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    video.evaluate("v => { v.muted = true; return v.play(); }")
    while video.evaluate("v => v.currentTime") == 0 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    return video.evaluate(
        "v => ({ready: v.readyState, time: v.currentTime, width: v.videoWidth, error: v.error && v.error.code})"
    )


def test_study_page_shows_each_instance_for_what_it_is(server, admin, study, browser):
    dialogs: list[str] = []
    page = new_page(browser, server, dialogs, viewport={"width": 1280, "height": 900})
    page.goto(page.base + f"/studies/{study['uid']}")
    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(page.base + f"/studies/{study['uid']}")

    series = page.inner_text("ol.series")
    for line in ("1 image, 10 frames", "Video · 50 frames, 2.0 s", "PDF document", "Structured report",
                 "Grayscale Softcopy Presentation State"):  # fmt: skip
        assert line in series, line
    assert "no pixel data" not in series and "1 images" not in series
    pictures = loaded_pictures(page)
    assert len(pictures) == 6 and all(width > 0 for _, width in pictures), pictures
    assert sum("/poster" in src for src, _ in pictures) == 2  # the videos' first frames
    shot(page, "study-contents")

    # H.264: remuxed, played in the browser's own player where the viewer would be.
    page.click(f"button.view[data-video-sop='{study['h264']}']")
    playing = wait_playing(page)
    assert playing["ready"] >= 2 and playing["time"] > 0 and playing["width"] == 320 and playing["error"] is None
    assert "no decoder" not in page.inner_text("#viewer")
    expect(page.locator("#viewer .player-caption")).to_have_text("50 frames · 2.0 s · 320×240 Download MP4")
    shot(page, "study-video")

    # MPEG-2: transcoded to H.264 first; the player waits for it.
    page.click(f"button.view[data-video-sop='{study['mpeg2']}']")
    playing = wait_playing(page)
    assert playing["ready"] >= 2 and playing["time"] > 0 and playing["error"] is None
    expect(page.locator("#viewer .player-caption")).to_contain_text("converted to H.264")

    # The image series opens in the viewer page (the strip offers images only); Back returns.
    page.locator("li[data-kind=image] a.view").click()
    expect(page.locator("#viewer .lbv-frame")).to_have_text("1 / 10")
    expect(page.locator(".ws-strip .ws-series")).to_have_count(1)
    page.go_back()

    # The PDF opens in a new tab as a PDF, in the browser's own viewer.
    is_document = lambda response: response.url.endswith("/document")  # noqa: E731
    with page.expect_popup() as tab, page.context.expect_event("response", is_document) as opened:
        page.locator("li[data-kind=pdf] a.view").click()
    assert opened.value.status == 200 and opened.value.headers["content-type"] == "application/pdf"
    tab.value.wait_for_load_state()
    shot(tab.value, "pdf")
    tab.value.close()

    # The report reads as text; what it says is shown, never run.
    page.locator("a", has_text="Read the report").click()
    page.wait_for_url(page.base + "/instances/*/report")
    report = page.inner_text("article.report")
    assert page.inner_text("h1").startswith("Diagnosis")
    for text in ("Diameter: 3 cm", "Sample Code 1", HOSTILE):
        assert text in report, text
    assert page.locator("article.report img").count() == 0 and not dialogs
    shot(page, "report")

    phone = new_page(browser, server, dialogs, viewport={"width": 360, "height": 740}, is_mobile=True)
    phone.goto(phone.base + f"/studies/{study['uid']}")
    log_in(phone, ADMIN, ADMIN_PASSWORD)
    phone.wait_for_url(phone.base + f"/studies/{study['uid']}")
    assert all(width > 0 for _, width in loaded_pictures(phone))
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    shot(phone, "study-contents-phone")
