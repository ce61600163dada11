"""Attaching on the study page in the system Chromium (Playwright): files chosen with the picker
(set_input_files) and a file dropped on the page; then each is on the page for what it is (the
PDF opens as the uploaded bytes, the photo has a thumbnail, the video plays) and DCMTK getscu
retrieves them as uploaded.  A bad file or one over attach_max_mb shows its refusal on the page and stores nothing."""

from __future__ import annotations

import base64

import pytest
from pydicom.encaps import generate_frames
from test_attachments import H264_HP41, JPEG_BASELINE, retrieve
from test_contents_browser import loaded_pictures, wait_playing

from support.browser import expect, log_in, new_page, shot
from support.dicomgen import make_study
from support.mediagen import FFMPEG, bmp_bomb, h264_annexb, make_stream, minimal_pdf, picture
from support.qr import add_node
from support.tools import require
from support.web import ADMIN, ADMIN_PASSWORD

pytestmark = pytest.mark.slow  # Chromium

DROP = """([name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  document.body.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
  document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
}"""


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    require(FFMPEG)
    return {"dicom_workers": 0, "attach_max_mb": 2}


def study_page(server, browser, study_uid: str):
    page = new_page(browser, server, [], viewport={"width": 1280, "height": 900})
    page.goto(page.base + f"/studies/{study_uid}")
    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(page.base + f"/studies/{study_uid}")
    return page


def series_by_description(page, description: str):
    return page.locator("li.series-item").filter(has=page.locator("h3", has_text=description))


def test_attach_with_the_picker_and_by_drop_then_retrieve(server, admin, browser, tmp_path):
    from pydicom import dcmread

    image = make_study(tmp_path / "study", 1, patient_name="Drop^Dora", patient_id="DROP-1")[0]
    study = dcmread(image, stop_before_pixels=True)
    assert server.storescu(image).returncode == 0
    add_node(server, "GETSCU", 1, "get")
    pdf = minimal_pdf(tmp_path / "referral.pdf", pages=3, title="Referral letter")
    jpeg = picture(tmp_path / "wound.jpg", (400, 300), quality=90).read_bytes()
    mp4 = make_stream(tmp_path / "gastroscopy.mp4", "h264", "mp4", frames=25)

    page = study_page(server, browser, str(study.StudyInstanceUID))
    with page.expect_navigation():  # the page reloads once all are in
        page.set_input_files("#attach-files", [str(tmp_path / "referral.pdf"), str(tmp_path / "wound.jpg"), str(mp4)])
    page.wait_for_load_state()
    with page.expect_navigation():
        page.evaluate(DROP, ["drawing.png", "image/png", base64.b64encode(
            picture(tmp_path / "drawing.png", (90, 60)).read_bytes()).decode()])  # fmt: skip
    page.wait_for_load_state()
    for description in ("Referral letter", "wound", "gastroscopy", "drawing"):
        expect(series_by_description(page, description)).to_have_count(1)
    assert all(width > 0 for _, width in loaded_pictures(page))
    shot(page, "study-attached")

    pdf_link = series_by_description(page, "Referral letter").locator("a.view").get_attribute("href")
    assert admin.get(pdf_link).content == pdf  # what the page opens
    video = series_by_description(page, "gastroscopy").locator("button.view")
    video.click()
    playing = wait_playing(page)
    assert playing["ready"] >= 2 and playing["time"] > 0 and playing["width"] == 320 and playing["error"] is None

    uids = {d: series_by_description(page, d).get_attribute("data-series-uid") for d in ("wound", "gastroscopy")}
    got = retrieve(server, study, uids["wound"], tmp_path / "jpeg", JPEG_BASELINE)
    assert next(generate_frames(got.PixelData, number_of_frames=1))[: len(jpeg)] == jpeg
    got = retrieve(server, study, uids["gastroscopy"], tmp_path / "mp4", H264_HP41)
    (tmp_path / "back.mp4").write_bytes(next(generate_frames(got.PixelData, number_of_frames=1)))
    assert h264_annexb(tmp_path / "back.mp4") == h264_annexb(mp4)
    assert got.PatientName == study.PatientName and got.StudyInstanceUID == study.StudyInstanceUID


def test_a_refusal_is_shown_and_nothing_stored(server, admin, browser, tmp_path):
    image = make_study(tmp_path / "study", 1, patient_name="Bomb^Bert", patient_id="BOMB-1")[0]
    assert server.storescu(image).returncode == 0
    from pydicom import dcmread

    page = study_page(server, browser, str(dcmread(image, stop_before_pixels=True).StudyInstanceUID))
    before = server.count()
    (tmp_path / "letter.pdf").write_bytes(b"not a PDF\n")
    (tmp_path / "huge.pdf").write_bytes(b"%PDF-1.4\n" + b"0" * (3 << 20) + b"\n%%EOF\n")  # over attach_max_mb
    page.set_input_files("#attach-files", [str(bmp_bomb(tmp_path / "bomb.bmp")), str(tmp_path / "letter.pdf"),
                                           str(tmp_path / "huge.pdf")])  # fmt: skip
    expect(page.locator("#attach")).to_have_attribute("data-done", "0")
    lines = page.locator("#attach-progress li.error")
    expect(lines).to_have_count(3)
    expect(lines.nth(2)).to_contain_text("huge.pdf: not attached (413): the file is larger than this Lightbox accepts")
    assert "bomb.bmp: not attached (422)" in lines.nth(0).inner_text() and "pixels" in lines.nth(0).inner_text()
    assert "letter.pdf: not attached (415): named like a PDF, but its content is not one" in lines.nth(1).inner_text()
    shot(page, "study-attach-refused")
    assert server.count() == before and list((server.data / "spool").iterdir()) == []
