"""Files attached to a study through the JSON API and `lightbox attach`, read back with DCMTK:
getscu retrieves each new instance, dcm2pdf extracts the PDF, findscu finds the new series.
The PDF's, the JPEG's and the MP4's bytes must come back as uploaded, PNG/BMP pixels as they
were, an AVI re-encoded to H.264 that decodes to as many frames; bad files are refused with
nothing stored (no row, no file, nothing in the spool)."""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from PIL import Image, ImageOps
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from appliance.attachments import attach as attach_module
from appliance.attachments import photo
from appliance.made.identity import IDENTITY
from support.dicomgen import make_study
from support.mediagen import (
    FFMPEG,
    bmp_bomb,
    frame_hashes,
    h264_annexb,
    make_avi,
    make_stream,
    minimal_pdf,
    picture,
    probe,
)
from support.qr import add_node, findscu, movescu_to_storescp
from support.scu import rows, stored_files
from support.tools import dcmtk
from support.web import VIEWER, Client

MAX_MB = 2  # the module's attach_max_mb: small, so that "too large" needs no 2 GB
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
VIDEO_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4.1"
JPEG_BASELINE, H264_HP41 = "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.102"
PREFER = {JPEG_BASELINE: "+xy", H264_HP41: "+xn"}  # getscu's option to accept the syntax

pytestmark = pytest.mark.usefixtures("netns")  # storescp (the C-MOVE destination) cannot bind to 127.0.0.1 only


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"attach_max_mb": MAX_MB}


@pytest.fixture(scope="module")
def study(server, tmp_path_factory) -> Dataset:
    """A study of one image (its header: the identity every attachment must copy)."""
    image = make_study(tmp_path_factory.mktemp("study"), 1, patient_name="Müller^Anna", patient_id="ATT-1")[0]
    assert server.storescu(image).returncode == 0
    add_node(server, "GETSCU", 1, "get")
    add_node(server, "FINDSCU", 2, "find")
    return dcmread(image, stop_before_pixels=True)


def upload(client: Client, study_uid: str, path: Path, name: str | None = None) -> dict:
    with open(path, "rb") as body:
        answer = client.post(f"/api/studies/{study_uid}/attachments", params={"name": name or path.name}, data=body,
                             headers={"X-CSRF-Token": client.csrf(), "Content-Type": "application/octet-stream"})  # fmt: skip
    return {"status": answer.status_code, **answer.json()}


def attached(client: Client, study: Dataset, path: Path, name: str | None = None) -> dict:
    answer = upload(client, str(study.StudyInstanceUID), path, name)
    assert answer["status"] == 201, answer
    return answer


def retrieve(server, study: Dataset, series_uid: str, out: Path, syntax: str = "") -> Dataset:
    """The one instance of ``series_uid``, fetched with DCMTK getscu (C-GET)."""
    out.mkdir(parents=True, exist_ok=True)
    prefer = [PREFER[syntax]] if syntax in PREFER else []
    result = subprocess.run(
        [dcmtk("getscu"), "-S", *prefer, "-aet", "GETSCU", "-aec", server.aet, "-od", str(out),
         "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study.StudyInstanceUID}",
         "-k", f"SeriesInstanceUID={series_uid}", "127.0.0.1", str(server.dicom_port)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    files = sorted(out.iterdir())
    assert len(files) == 1, (files, result.stderr)
    return dcmread(files[0])


def assert_same_identity(got: Dataset, study: Dataset) -> None:
    for keyword in IDENTITY:
        if keyword in study:
            assert got.get(keyword) == study.get(keyword), keyword
    assert got.SeriesInstanceUID != study.SeriesInstanceUID


def nothing_left(server, before: int) -> None:
    assert server.count() == before
    assert list((server.data / "spool").iterdir()) == []


def test_pdf_kept_byte_for_byte_and_dcm2pdf_extracts_it(server, admin, study, tmp_path):
    pdf = minimal_pdf(tmp_path / "scan.pdf", pages=20, title="Referral from Dr Who")
    answer = attached(admin, study, tmp_path / "scan.pdf")
    assert (answer["kind"], answer["how"], answer["title"]) == ("pdf", "kept", "Referral from Dr Who")
    got = retrieve(server, study, answer["series_uid"], tmp_path / "got")
    assert got.SOPClassUID == ENCAPSULATED_PDF and got.Modality == "DOC"
    assert got.DocumentTitle == "Referral from Dr Who"
    assert got.EncapsulatedDocument[: got.EncapsulatedDocumentLength] == pdf
    assert_same_identity(got, study)
    extracted = tmp_path / "out.pdf"
    subprocess.run([dcmtk("dcm2pdf"), str(next((tmp_path / "got").iterdir())), str(extracted)], check=True, timeout=60)
    assert extracted.read_bytes() == pdf
    shown = admin.get(f"/api/instances/{answer['sop_uid']}/document")  # the study page's PDF link
    assert shown.status_code == 200 and shown.content == pdf


def test_baseline_jpeg_kept_as_its_bytes(server, admin, study, tmp_path):
    jpeg = picture(tmp_path / "photo.jpg", (641, 480), quality=90).read_bytes()
    answer = attached(admin, study, tmp_path / "photo.jpg")
    assert (answer["kind"], answer["how"]) == ("jpeg", "kept")
    got = retrieve(server, study, answer["series_uid"], tmp_path / "got", JPEG_BASELINE)
    assert got.file_meta.TransferSyntaxUID == JPEG_BASELINE and got.SOPClassUID == VL_PHOTOGRAPHIC
    assert (got.Rows, got.Columns, got.PhotometricInterpretation) == (480, 641, "YBR_FULL_422")
    frame = next(generate_frames(got.PixelData, number_of_frames=1))
    assert frame[: len(jpeg)] == jpeg and frame[len(jpeg) :] in (b"", b"\x00")
    assert_same_identity(got, study)
    shown = admin.get(f"/api/instances/{answer['sop_uid']}/frames/1/rendered", params={"format": "png"})
    assert shown.status_code == 200 and Image.open(io.BytesIO(shown.content)).size == (641, 480)


@pytest.mark.parametrize("suffix", ["png", "bmp"])
def test_png_and_bmp_pixels_identical(server, admin, study, tmp_path, suffix):
    path = picture(tmp_path / f"intraoral.{suffix}", (199, 101))
    answer = attached(admin, study, path)
    assert (answer["kind"], answer["how"]) == ("image", "decoded")
    got = retrieve(server, study, answer["series_uid"], tmp_path / "got")
    assert got.PhotometricInterpretation == "RGB" and got.SeriesDescription == "intraoral"
    assert np.array_equal(got.pixel_array, np.asarray(Image.open(path).convert("RGB")))


def test_turned_and_progressive_jpegs_are_stored_upright_and_decoded(server, admin, study, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to show": a phone held upright
    turned = picture(tmp_path / "phone.jpg", (320, 240), quality=92, exif=exif)
    answer = attached(admin, study, turned)
    assert answer["how"] == "decoded"
    got = retrieve(server, study, answer["series_uid"], tmp_path / "turned")
    assert (got.Rows, got.Columns, got.LossyImageCompression) == (320, 240, "01")
    progressive = picture(tmp_path / "progressive.jpg", (120, 90), quality=90, progressive=True)
    answer = attached(admin, study, progressive)
    got = retrieve(server, study, answer["series_uid"], tmp_path / "progressive")
    assert np.array_equal(got.pixel_array, np.asarray(Image.open(progressive).convert("RGB")))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_bands_turn_every_exif_orientation_as_pillow_does(orientation):
    source = Image.effect_noise((37, 23), 60).convert("RGB")  # odd sizes: bands of uneven rows
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    source.save(buffer, "PNG", exif=exif)
    stored = Image.open(buffer)
    stored.load()
    expected = ImageOps.exif_transpose(stored)
    with mock.patch.object(photo, "BAND_ROWS", 5):
        got = b"".join(photo.upright_bands(stored, orientation, "RGB"))
    assert got == expected.tobytes()


def test_a_16_bit_png_fitted_into_8_bits(server, admin, study, tmp_path):
    ramp = np.tile(np.arange(0, 4096, 16, dtype=np.uint16), (8, 1))  # 12 bits used of 16
    Image.fromarray(ramp).save(tmp_path / "xray-photo.png")
    got = retrieve(server, study, attached(admin, study, tmp_path / "xray-photo.png")["series_uid"], tmp_path / "got")
    assert got.PhotometricInterpretation == "MONOCHROME2"
    assert np.array_equal(got.pixel_array[0], np.round(ramp[0] * (255 / 4080)).astype(np.uint8))


def test_mp4_h264_stream_kept_as_is(server, admin, study, tmp_path):
    mp4 = make_stream(tmp_path / "endoscopy.mp4", "h264", "mp4", frames=40)
    answer = attached(admin, study, mp4)
    assert (answer["kind"], answer["how"]) == ("video", "kept")
    got = retrieve(server, study, answer["series_uid"], tmp_path / "got", H264_HP41)
    assert got.SOPClassUID == VIDEO_PHOTOGRAPHIC and got.file_meta.TransferSyntaxUID == H264_HP41
    assert got.NumberOfFrames == 40 and (got.Rows, got.Columns) == (240, 320)
    stream = next(generate_frames(got.PixelData, number_of_frames=1))
    data = mp4.read_bytes()
    assert stream[: len(data)] == data
    (tmp_path / "back.mp4").write_bytes(stream[: len(data)])
    assert h264_annexb(tmp_path / "back.mp4") == h264_annexb(mp4)
    assert_same_identity(got, study)


def test_quicktime_h264_put_into_mp4_with_the_stream_untouched(server, admin, study, tmp_path):
    mp4 = make_stream(tmp_path / "phone.mp4", "h264", "mp4", frames=25)
    mov = tmp_path / "IMG_0001.MOV"
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", str(mp4), "-c", "copy", "-f", "mov", str(mov)],
                   check=True, timeout=60)  # fmt: skip
    answer = attached(admin, study, mov)
    assert (answer["kind"], answer["how"], answer["title"]) == ("video", "remuxed", "IMG_0001")
    got = retrieve(server, study, answer["series_uid"], tmp_path / "got", H264_HP41)
    (tmp_path / "back.mp4").write_bytes(next(generate_frames(got.PixelData, number_of_frames=1)))
    assert probe(tmp_path / "back.mp4")["format"]["tags"]["major_brand"] == "isom"
    assert h264_annexb(tmp_path / "back.mp4") == h264_annexb(mov)


def test_avi_reencoded_to_h264_plays_every_frame(server, admin, study, tmp_path):
    avi = make_avi(tmp_path / "capture.avi", frames=30)
    answer = attached(admin, study, avi)
    assert (answer["kind"], answer["how"]) == ("video", "re-encoded")
    got = retrieve(server, study, answer["series_uid"], tmp_path / "got", H264_HP41)
    assert got.NumberOfFrames == 30
    mp4 = tmp_path / "back.mp4"
    mp4.write_bytes(next(generate_frames(got.PixelData, number_of_frames=1)))
    video = next(s for s in probe(mp4)["streams"] if s["codec_type"] == "video")
    assert (video["codec_name"], video["profile"], int(video["nb_read_frames"])) == ("h264", "High", 30)
    assert len(frame_hashes(mp4)) == 30


def conversions(server) -> list[int]:
    """The pids of the server's ffmpeg runs converting an attachment (in its spool)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            words = cmdline.read_bytes().split(b"\0")
            if words[0].endswith(b"ffmpeg") and any(str(server.data).encode() in w and b"attach-" in w for w in words):
                found.append(int(cmdline.parent.name))
    return found


def test_a_pdf_does_not_wait_for_a_video_being_converted(server, admin, study, tmp_path):
    avi = make_avi(tmp_path / "long.avi", frames=750, size="640x360")  # seconds of re-encoding
    assert avi.stat().st_size < MAX_MB << 20
    with ThreadPoolExecutor(1) as pool:
        video = pool.submit(upload, admin, str(study.StudyInstanceUID), avi)
        deadline = time.monotonic() + 60
        while not conversions(server) and time.monotonic() < deadline and not video.done():
            time.sleep(0.02)
        converting = conversions(server)
        assert converting, "no conversion seen"
        minimal_pdf(tmp_path / "letter.pdf")
        pdf = attached(admin, study, tmp_path / "letter.pdf")
        assert pdf["how"] == "kept"
        assert any(Path(f"/proc/{pid}").exists() for pid in converting), "the PDF waited for the conversion"
        assert video.result(timeout=300)["status"] == 201


def test_a_second_conversion_waits_its_turn_then_is_refused():
    with attach_module.converting(), pytest.raises(attach_module.Refused) as refused, attach_module.converting(0.2):
        pass
    assert refused.value.status == 503 and "try again" in str(refused.value)
    with attach_module.converting(wait=0):  # given back
        pass


def test_cmove_sends_the_attachments_with_the_study(server, admin, tmp_path):
    image = make_study(tmp_path / "study", 1, patient_name="Move^Mia", patient_id="MOVE-1")[0]
    assert server.storescu(image).returncode == 0
    study = dcmread(image, stop_before_pixels=True)
    pdf = minimal_pdf(tmp_path / "letter.pdf")
    attached(admin, study, tmp_path / "letter.pdf")
    attached(admin, study, picture(tmp_path / "lesion.bmp", (30, 20)))
    result, received = movescu_to_storescp(server, str(study.StudyInstanceUID), tmp_path / "moved")
    assert result.returncode == 0, result.stderr
    moved = {str(ds.SOPClassUID): ds for ds in map(dcmread, received)}
    assert set(moved) == {str(study.SOPClassUID), ENCAPSULATED_PDF, VL_PHOTOGRAPHIC}
    assert moved[ENCAPSULATED_PDF].EncapsulatedDocument[: len(pdf)] == pdf
    assert moved[VL_PHOTOGRAPHIC].pixel_array.shape == (20, 30, 3)


def test_cfind_finds_the_new_series(server, admin, study, tmp_path):
    answer = attached(admin, study, picture(tmp_path / "wound.png", (64, 48)))
    found = findscu(server, tmp_path / "find", "-S", "QueryRetrieveLevel=SERIES",
                    f"StudyInstanceUID={study.StudyInstanceUID}", "SeriesInstanceUID", "Modality", "SeriesDescription")  # fmt: skip
    mine = [ds for ds in found if ds.SeriesInstanceUID == answer["series_uid"]]
    assert [(ds.Modality, ds.SeriesDescription) for ds in mine] == [("XC", "wound")]


def test_a_viewer_attaches_too_and_every_attach_is_audited(server, viewer, study, tmp_path):
    minimal_pdf(tmp_path / "letter.pdf")
    answer = attached(viewer, study, tmp_path / "letter.pdf")
    assert answer["kind"] == "pdf"
    assert rows(server.data, "SELECT COUNT(*) FROM change WHERE sop_uid = ?", answer["sop_uid"])[0][0] >= 1
    audited = rows(server.data, "SELECT user_name, detail FROM auditevent WHERE study_uid = ? AND detail LIKE ?",
                   str(study.StudyInstanceUID), "pdf attached%")  # fmt: skip
    assert (VIEWER, "pdf attached (kept)") in audited


def test_bad_files_refused_with_nothing_stored(server, admin, study, tmp_path):
    before = server.count()
    study_uid = str(study.StudyInstanceUID)
    (tmp_path / "letter.pdf").write_bytes(b"Dear colleague, this is no PDF at all.\n")
    answer = upload(admin, study_uid, tmp_path / "letter.pdf")
    assert answer["status"] == 415 and "not a file Lightbox can attach" in answer["error"]
    whole = minimal_pdf(tmp_path / "cut.pdf")
    (tmp_path / "cut.pdf").write_bytes(whole[: len(whole) // 2])  # an upload cut short
    answer = upload(admin, study_uid, tmp_path / "cut.pdf")
    assert answer["status"] == 422 and "%%EOF" in answer["error"]
    (tmp_path / "cut.jpg").write_bytes(picture(tmp_path / "whole.jpg", (64, 64)).read_bytes()[:40])
    answer = upload(admin, study_uid, tmp_path / "cut.jpg")
    assert answer["status"] == 422 and "JPEG" in answer["error"], answer
    answer = upload(admin, study_uid, bmp_bomb(tmp_path / "bomb.bmp"))
    assert answer["status"] == 422 and "pixels" in answer["error"], answer
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 5000)  # a container, no video
    answer = upload(admin, study_uid, tmp_path / "clip.mp4")
    assert answer["status"] == 422, answer
    assert upload(admin, "1.2.3.4.5.6.7", picture(tmp_path / "x.png", (8, 8)))["status"] == 404
    nothing_left(server, before)


def test_too_large_refused_before_and_while_reading(server, admin, study, tmp_path):
    before = server.count()
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.4\n" + b"0" * (MAX_MB << 20) + b"\n%%EOF\n")
    url = f"/api/studies/{study.StudyInstanceUID}/attachments?name=big.pdf"
    answer = admin.post(url, data=big.read_bytes(), headers={"X-CSRF-Token": admin.csrf()})
    assert answer.status_code == 413
    chunks = (big.read_bytes()[i : i + 65536] for i in range(0, big.stat().st_size, 65536))  # no length: chunked
    answer = admin.post(url, data=chunks, headers={"X-CSRF-Token": admin.csrf()})
    assert answer.status_code == 413
    assert declared_2gb_answer(server, admin, url).startswith(b"HTTP/1.1 413")
    nothing_left(server, before)


def declared_2gb_answer(server, admin: Client, url: str) -> bytes:
    """The answer to headers declaring a 2 GB body, of which nothing is sent."""
    cookie = "; ".join(f"{c.name}={c.value}" for c in admin.cookies)
    head = (f"POST {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nOrigin: {admin.base}\r\n"
            f"X-CSRF-Token: {admin.csrf()}\r\nContent-Length: {2 << 30}\r\n\r\n")  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as conn:
        conn.sendall(head.encode())
        return conn.recv(4096)


def test_cli_attaches_next_to_the_running_service(server, study, tmp_path):
    minimal_pdf(tmp_path / "consent form.pdf", title="")
    picture(tmp_path / "cli photo.jpg", (64, 64), quality=80)
    (tmp_path / "notes.txt").write_text("not attachable\n")
    before = server.count()
    result = server.cli("attach", str(study.StudyInstanceUID), str(tmp_path / "consent form.pdf"),
                        str(tmp_path / "cli photo.jpg"), str(tmp_path / "notes.txt"))  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "consent form.pdf: attached as pdf (kept)" in result.stdout
    assert "cli photo.jpg: attached as jpeg (kept)" in result.stdout
    assert "notes.txt: not attached: not a file Lightbox can attach" in result.stderr
    assert server.count() == before + 2
    titles = rows(
        server.data, "SELECT description FROM series WHERE description IN (?, ?)", "consent form", "cli photo"
    )
    assert sorted(t for (t,) in titles) == ["cli photo", "consent form"]
    assert server.cli("attach", "1.2.3.999", str(tmp_path / "cli photo.jpg")).returncode == 2
    assert len(stored_files(server.data)) == server.count()
