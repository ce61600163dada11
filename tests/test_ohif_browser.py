"""OHIF 3.13, served by Lightbox under /ohif/, in the system Chromium: the study list shows the
studies storescu sent, and a CT, a JPEG 2000 image, a multi-frame ultrasound and a video display
(the viewport's canvas is read back, not blank), and an Encapsulated PDF's viewport loads the PDF
sent (headless Chromium has no PDF plugin to draw it).  Every request OHIF makes to Lightbox is
recorded and must be answered 2xx (or 304 to a revalidation).

OHIF is the pinned build that `bash tests/prepare` installs with `lightbox ohif install` into
tests/.ohif (once: a rerun finds it installed); each server here links it into its data folder.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from appliance import ohif
from support.browser import TIMEOUT_MS, log_in, new_page, shot
from support.corpus import storescu_copy
from support.dicomgen import make_dataset, write
from support.imagegen import corpus_file
from support.lightbox import LightboxProcess, running
from support.mediagen import H264_HP41, make_stream, odd_pdf, pdf_dicom, video_dicom
from support.tools import missing
from support.web import ADMIN, ADMIN_PASSWORD, first_admin

pytestmark = pytest.mark.slow  # Chromium, and OHIF's 17 MB bundle

PREPARED = Path(__file__).resolve().parent / ".ohif"  # tests/prepare: lightbox ohif install --data tests/.ohif
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
# The share of the viewport's pixels that must not be black for the image to count as shown.
DRAWN = """() => {
  const canvas = document.querySelector('canvas.cornerstone-canvas');
  if (!canvas || !canvas.width || !canvas.height) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let lit = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] > 16 || data[i + 1] > 16 || data[i + 2] > 16) lit++;
  return lit / (canvas.width * canvas.height);
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightboxProcess]:
    """A server whose data folder links the prepared OHIF (as `lightbox ohif install` leaves it)."""
    if not ohif.installed(PREPARED):
        missing(f"OHIF is not installed in {PREPARED}: run `bash tests/prepare` "
                f"(or `lightbox ohif install --data {PREPARED}`)")  # fmt: skip
    data = tmp_path_factory.mktemp("ohif") / "data"
    data.mkdir()
    (data / ohif.LINK).symlink_to(ohif.dist_dir(PREPARED).resolve())
    with running(data) as lightbox:
        yield lightbox


@pytest.fixture(scope="module")
def letter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real PDF, the document of the PDF study."""
    path = tmp_path_factory.mktemp("letter") / "letter.pdf"
    odd_pdf(path)
    return path


@pytest.fixture(scope="module")
def studies(
    server: LightboxProcess, letter: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, str]]:
    """Five studies sent by storescu, each (Study Instance UID, patient name as OHIF writes it)."""
    first_admin(server)
    folder = tmp_path_factory.mktemp("sent")
    ct = storescu_copy(corpus_file("CT_small.dcm"), folder / "ct.dcm")
    j2k = storescu_copy(corpus_file("MR_small_jp2klossless.dcm"), folder / "j2k.dcm")
    us = make_dataset(patient_id="OHIF-US", patient_name="Sono^Sam", modality="US", rows=120, columns=160,
                      NumberOfFrames=12, FrameTime=40.0, SamplesPerPixel=3, PhotometricInterpretation="RGB",
                      PlanarConfiguration=0, BitsAllocated=8, BitsStored=8, HighBit=7)  # fmt: skip
    us.SOPClassUID = US_MULTIFRAME
    y, x = np.mgrid[0:120, 0:160]
    us.PixelData = np.stack(
        [np.stack([(x + 10 * i) % 256, y * 2, np.full_like(x, 128)], -1).astype(np.uint8) for i in range(12)]
    ).tobytes()
    us_file = write(us, folder / "us.dcm")
    stream = make_stream(folder / "clip.ts", "h264", "ts", frames=25)
    video = video_dicom(stream, folder / "video.dcm", H264_HP41, frames=25, patient_id="OHIF-VIDEO",
                        patient_name="Clip^Carl")  # fmt: skip
    pdf = pdf_dicom(letter, folder / "pdf.dcm")
    for paths, extra in (([ct, us_file, pdf], ()), ([j2k], ("-xv",)), ([video], ("-R", "-xn"))):
        result = server.storescu(*paths, extra=extra)
        assert result.returncode == 0 and result.stderr.count("(Success)") == len(paths), result.stderr
    found = {}
    for name, path in (("ct", ct), ("j2k", j2k), ("us", us_file), ("video", video), ("pdf", pdf)):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found[name] = (str(ds.StudyInstanceUID), f"{ds.PatientName.family_name}, {ds.PatientName.given_name}")
    return found


class Recorder:
    """Every answer Lightbox gives the page, every request that got none, and CSP complaints."""

    def __init__(self, page: Any) -> None:
        self.answers: list[tuple[int, str, str]] = []  # status, method, path
        self.followed: set[str] = set()  # paths whose redirect the browser followed
        self.failed: list[tuple[str, str]] = []  # path, Chromium's reason
        self.csp: list[str] = []
        origin = page.base
        page.on("response", lambda r: r.url.startswith(origin) and self.answers.append(
            (r.status, r.request.method, r.url[len(origin):])))  # fmt: skip
        page.on("request", lambda r: r.redirected_from and self.followed.add(r.redirected_from.url[len(origin) :]))
        page.on("requestfailed", lambda r: r.url.startswith(origin) and self.failed.append(
            (r.url[len(origin):], r.failure)))  # fmt: skip
        page.on("console", lambda m: "Content Security Policy" in m.text and self.csp.append(m.text))

    def check(self) -> None:
        # A redirect followed (its answer recorded too) is on the way: the login's 303 back to
        # OHIF, a video's rendered 307 to its MP4 (which answers 206).  A 304 answers the
        # browser's own revalidation of a file it has (OHIF's no-cache files, loaded again).
        wrong = [a for a in self.answers
                 if not (200 <= a[0] < 300 or a[0] == 304 or (a[0] in (303, 307) and a[2] in self.followed))]  # fmt: skip
        assert not wrong, wrong
        # OHIF cancels frames it fetches ahead once a multi-frame's cine moves on: those were
        # answered 200 first (the server's part done), then aborted by the page while reading.
        answered = {a[2] for a in self.answers if 200 <= a[0] < 300}
        unanswered = [f for f in self.failed if not (f[1] == "net::ERR_ABORTED" and f[0] in answered)]
        assert not unanswered, unanswered
        assert not self.csp, self.csp


def poll(page: Any, script: str, arg: Any = None, seconds: float = 4 * TIMEOUT_MS / 1000) -> Any:
    """``script``'s value once truthy (or the last one): evaluated by the browser's debugger,
    which the page's CSP does not cover, unlike wait_for_function's polling eval."""
    deadline = time.monotonic() + seconds
    while not (value := page.evaluate(script, arg)) and time.monotonic() < deadline:
        time.sleep(0.25)
    return value


def shown(page: Any, name: str) -> float:
    """Wait until the viewport's canvas has something drawn; the share of lit pixels."""
    try:
        poll(page, f"() => ({DRAWN})() > 0.02")
    finally:
        shot(page, f"ohif-{name}")
    return page.evaluate(DRAWN)


def test_ohif_needs_login_then_lists_the_studies(server, studies, browser):
    dialogs: list[str] = []
    page = new_page(browser, server, dialogs, viewport={"width": 1400, "height": 900})
    page.goto(page.base + "/ohif/")
    assert "/login" in page.url  # not logged in: the login page first ...
    recorder = Recorder(page)
    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(page.base + "/ohif/")  # ... then back to OHIF
    names = [name for _, name in studies.values()]
    assert len(set(names)) == 5
    assert poll(page, "names => names.every(n => document.body.innerText.includes(n))", names), names
    shot(page, "ohif-study-list")
    page.wait_for_load_state("networkidle")
    page.context.close()
    recorder.check()
    assert {a[2].split("?")[0] for a in recorder.answers} >= {"/ohif/app-config.js", "/dicom-web/studies"}


@pytest.mark.parametrize("name", ["ct", "j2k", "us", "video"])
def test_ohif_displays(server, studies, browser, name):
    dialogs: list[str] = []
    page = new_page(browser, server, dialogs, viewport={"width": 1400, "height": 900})
    page.goto(f"{page.base}/studies/{studies[name][0]}")  # the study page ...
    log_in(page, ADMIN, ADMIN_PASSWORD)
    link = page.locator("#open-ohif")  # ... and its link, as a user opens OHIF
    assert link.inner_text() == "Open in OHIF" and link.get_attribute("target") == "_blank"
    viewer = page.context.new_page()  # the link's new tab (recorded from its first request)
    viewer.base = page.base
    viewer.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    recorder = Recorder(viewer)
    try:
        viewer.goto(page.base + link.get_attribute("href"), wait_until="commit")
        assert shown(viewer, name) > 0.02
        viewer.wait_for_load_state("networkidle")
        recorder.check()
        assert any(a[2].startswith("/dicom-web/studies/") for a in recorder.answers)
        assert not dialogs
    finally:
        page.context.close()  # else its OHIF goes on prefetching and playing beside the next


def test_ohif_gives_a_pdf_its_document(server, studies, letter, browser):
    """OHIF's PDF viewport points an <object> at the instance's ``rendered`` URL (which is the
    PDF itself, PS3.18 8.3.4.3).  Headless Chromium has no PDF plugin to draw it ("No online
    PDF viewer installed"), so what is checked is what Lightbox answers there: the PDF sent."""
    dialogs: list[str] = []
    page = new_page(browser, server, dialogs, viewport={"width": 1400, "height": 900})
    page.goto(page.base + "/ohif/")
    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(page.base + "/ohif/")
    # Leave the study list first: its prefetches still running would be aborted by the next
    # navigation, and those are the list's, not the PDF viewport's.
    page.goto("about:blank")
    recorder = Recorder(page)
    try:
        page.goto(f"{page.base}/ohif/viewer?StudyInstanceUIDs={studies['pdf'][0]}", wait_until="commit")
        url = poll(page, "() => [...document.querySelectorAll('object')].map(o => o.data).find(Boolean)")
        shot(page, "ohif-pdf")
        assert url and url.startswith(page.base + "/dicom-web/studies/" + studies["pdf"][0]), url
        assert poll(page, "url => performance.getEntriesByName(url).length > 0", url), "the PDF was not asked for"
        answer = page.request.get(url, headers={"Accept": "application/pdf"})
        assert answer.status == 200 and answer.headers["content-type"] == "application/pdf"
        assert answer.body() == letter.read_bytes()
        recorder.check()
        assert (200, "GET", url[len(page.base) :]) in recorder.answers
        assert not dialogs
    finally:
        page.context.close()
