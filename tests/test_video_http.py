"""Stored videos played over HTTP: H.264, HEVC and MPEG-2 instances sent by DCMTK storescu (or
imported), made into MP4 by `lightbox serve`, fetched whole and by Range, and checked with
ffprobe and ffmpeg: codec, frame count, and the same pictures as the stored stream."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from PIL import Image
from pydicom import dcmread

from appliance.imaging.videos import FAILED, READY, VideoLibrary, VideoOptions
from support.dicomgen import make_study
from support.lightbox import LightboxProcess, running
from support.mediagen import (
    FFMPEG,
    H264_HP41,
    H264_HP41_FRAGMENTABLE,
    HEVC_MP51,
    MPEG2_MPML,
    VIDEO_ENDOSCOPIC,
    frame_hashes,
    make_stream,
    probe,
    video_dicom,
)
from support.tools import require
from support.web import Client, first_admin

pytestmark = pytest.mark.slow  # ffmpeg transcodes

STORESCU_SYNTAX = {H264_HP41: "-xn", MPEG2_MPML: "-xm", HEVC_MP51: "-x4"}


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    require(FFMPEG)  # the server makes MP4s with it
    return {"dicom_workers": 0}


def send(server: LightboxProcess, path: Path) -> str:
    """Store with storescu, proposing the file's video syntax; return the SOP Instance UID."""
    syntax = str(dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    result = server.storescu(path, extra=("-R", STORESCU_SYNTAX[syntax]))  # only the classes of the file
    assert result.returncode == 0 and "Received Store Response (Success)" in result.stderr, result.stderr
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def ready(client: Client, sop: str, query: str = "") -> dict:
    """Ask for the video's state until its MP4 is ready (the page's player does the same)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = client.get(f"/api/instances/{sop}/video{query}").json()
        if state["state"] == "ready":
            return state
        assert state["state"] in ("preparing", "busy"), state
        time.sleep(0.2)
    raise AssertionError(f"video {sop} not ready: {state}")


def fetch_mp4(client: Client, url: str, folder: Path) -> Path:
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "video/mp4" and answer.headers["Accept-Ranges"] == "bytes"
    path = folder / "fetched.mp4"
    path.write_bytes(answer.content)
    return path


def video_track(path: Path) -> dict:
    return next(s for s in probe(path)["streams"] if s["codec_type"] == "video")


def test_h264_in_mpeg_ts_is_remuxed_not_reencoded(server, admin, tmp_path):
    stream = make_stream(tmp_path / "clip.ts", "h264", "ts", audio=True)
    sop = send(server, video_dicom(stream, tmp_path / "h264.dcm", H264_HP41))
    state = ready(admin, sop)
    assert (state["codec"], state["transcoded"], state["frames"], state["duration"]) == ("h264", False, 50, 2.0)
    mp4 = fetch_mp4(admin, state["url"], tmp_path)
    found = probe(mp4)
    assert "mp4" in found["format"]["format_name"]
    video = next(s for s in found["streams"] if s["codec_type"] == "video")
    assert (video["codec_name"], video["nb_read_frames"]) == ("h264", "50")
    assert any(s["codec_type"] == "audio" and s["codec_name"] == "aac" for s in found["streams"])  # from AC-3
    # The same decoded pictures as the stored stream: the H.264 bitstream went in untouched.
    assert frame_hashes(mp4) == frame_hashes(stream)


def test_h264_in_an_mp4_container_is_remuxed(server, admin, tmp_path):
    """PS3.5 allows MP4 as the container too; its index is at the end: ffmpeg seeks in the file."""
    stream = make_stream(tmp_path / "clip.mp4", "h264", "mp4")
    state = ready(admin, send(server, video_dicom(stream, tmp_path / "mp4.dcm", H264_HP41)))
    assert (state["codec"], state["transcoded"]) == ("h264", False)
    mp4 = fetch_mp4(admin, state["url"], tmp_path)
    assert video_track(mp4)["nb_read_frames"] == "50" and frame_hashes(mp4) == frame_hashes(stream)


def test_a_media_element_gets_a_remux_being_made_not_a_503(server, admin, tmp_path):
    """A <video> (OHIF's, through DICOMweb's rendered) asks for the MP4 straight away and never
    retries a 503: the request waits for the copy instead (a transcode would still be a 503)."""
    stream = make_stream(tmp_path / "clip.ts", "h264", "ts")
    sop = send(server, video_dicom(stream, tmp_path / "first.dcm", H264_HP41))
    answer = admin.get(f"/api/instances/{sop}/video.mp4", headers={"Range": "bytes=0-"})  # the first ask
    assert answer.status_code == 206 and answer.content[4:8] == b"ftyp", answer.text


def test_mpeg2_is_transcoded_to_h264(server, admin, tmp_path):
    stream = make_stream(tmp_path / "clip.m2v", "mpeg2", "raw")
    sop = send(server, video_dicom(stream, tmp_path / "mpeg2.dcm", MPEG2_MPML, sop_class=VIDEO_ENDOSCOPIC))
    state = ready(admin, sop)
    assert (state["codec"], state["transcoded"]) == ("h264", True)
    video = video_track(fetch_mp4(admin, state["url"], tmp_path))
    assert (video["codec_name"], video["pix_fmt"], video["nb_read_frames"]) == ("h264", "yuv420p", "50")


def test_hevc_is_remuxed_for_safari_and_transcoded_on_request(server, admin, tmp_path):
    stream = make_stream(tmp_path / "clip.ts", "hevc", "ts")
    sop = send(server, video_dicom(stream, tmp_path / "hevc.dcm", HEVC_MP51))
    state = ready(admin, sop)
    assert (state["codec"], state["transcoded"]) == ("hevc", False)
    video = video_track(fetch_mp4(admin, state["url"], tmp_path))
    assert (video["codec_name"], video["codec_tag_string"], video["nb_read_frames"]) == ("hevc", "hvc1", "50")
    h264 = ready(admin, sop, "?codec=h264")  # what the player asks for in a browser without HEVC
    assert h264["url"].endswith("?codec=h264") and (h264["codec"], h264["transcoded"]) == ("h264", True)
    assert video_track(fetch_mp4(admin, h264["url"], tmp_path))["nb_read_frames"] == "50"


def test_bare_elementary_streams_keep_every_frame(server, admin, tmp_path):
    """A bare H.264 stream has no timestamps: without B-frames it is copied; with B-frames
    (and here split over fragments, imported rather than sent) it is re-encoded, since copying
    would leave frames in decoding order.  Either way all 50 frames play."""
    plain = make_stream(tmp_path / "plain.h264", "h264", "raw", bframes=False)
    sop = send(server, video_dicom(plain, tmp_path / "plain.dcm", H264_HP41))
    state = ready(admin, sop)
    assert state["transcoded"] is False
    mp4 = fetch_mp4(admin, state["url"], tmp_path)
    assert video_track(mp4)["nb_read_frames"] == "50"
    assert frame_hashes(mp4) == frame_hashes(plain)

    reordered = make_stream(tmp_path / "reordered.h264", "h264", "raw", bframes=True)
    dicom = video_dicom(reordered, tmp_path / "in" / "reordered.dcm", H264_HP41_FRAGMENTABLE, fragments=3)
    imported = server.cli("import", str(dicom.parent))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    state = ready(admin, str(dcmread(dicom, stop_before_pixels=True).SOPInstanceUID))
    assert state["transcoded"] is True
    video = video_track(fetch_mp4(admin, state["url"], tmp_path))
    assert (video["nb_read_frames"], video["duration"]) == ("50", "2.000000")


def test_range_requests(server, admin, tmp_path):
    stream = make_stream(tmp_path / "clip.ts", "h264", "ts")
    sop = send(server, video_dicom(stream, tmp_path / "range.dcm", H264_HP41))
    url = ready(admin, sop)["url"]
    whole = admin.get(url).content
    size = len(whole)

    def ranged(value: str, **headers: str):
        return admin.get(url, headers={"Range": value, **headers})

    part = ranged("bytes=100-1099")
    assert part.status_code == 206 and part.content == whole[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{size}" and part.headers["Content-Length"] == "1000"
    assert ranged("bytes=1000-").content == whole[1000:]
    assert ranged("bytes=-500").content == whole[-500:]
    assert ranged(f"bytes=0-{size * 2}").content == whole  # an end past the content is the end
    for bad in (f"bytes={size}-", "bytes=500-100", "bytes=abc", "bytes=-0", "bytes=-"):
        refused = ranged(bad)
        assert refused.status_code == 416, bad
        assert refused.headers["Content-Range"] == f"bytes */{size}"
    assert ranged("bytes=0-1,5-9").status_code == 200  # several ranges: the whole, as RFC 9110 allows
    assert ranged("items=0-1").status_code == 200  # another unit: ignored
    etag = part.headers["ETag"]
    assert ranged("bytes=10-19", **{"If-Range": etag}).status_code == 206
    assert ranged("bytes=10-19", **{"If-Range": '"other"'}).status_code == 200


def test_poster_login_audit_and_the_study_page(server, admin, tmp_path):
    stream = make_stream(tmp_path / "clip.ts", "h264", "ts")
    dicom = video_dicom(stream, tmp_path / "page.dcm", H264_HP41, patient_name="Video^Vera", patient_id="VID-1")
    sop = send(server, dicom)
    study_uid = str(dcmread(dicom, stop_before_pixels=True).StudyInstanceUID)
    poster = admin.get(f"/api/instances/{sop}/poster")
    assert poster.status_code == 200 and poster.headers["Content-Type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(poster.content)).size) == 160  # thumbnail_size, aspect kept
    anonymous = Client(admin.base)
    for path in ("/poster", "/video", "/video.mp4"):
        assert anonymous.get(f"/api/instances/{sop}{path}").status_code == 401

    url = ready(admin, sop)["url"]
    admin.get(url, headers={"Range": "bytes=0-"})
    admin.get(url, headers={"Range": "bytes=5000-"})  # a seek: not another viewing
    admin.get(url + "?download=1")
    events = [e for e in admin.get("/api/audit").json()["events"] if e["study_uid"] == study_uid]
    details = [(e["event"], e["detail"]) for e in events]
    assert details.count(("DICOMInstancesAccessed", "video (instance 1) played")) == 1, details
    assert ("Export", "video (instance 1) downloaded as MP4") in details

    detail = admin.get(f"/api/studies/{study_uid}").json()
    series = detail["series"][0]
    assert (series["kind"], series["summary"]) == ("video", "Video · 50 frames, 2.0 s")
    assert series["instances"][0]["video"]["playback"] == ""
    page = admin.get(f"/studies/{study_uid}").text
    assert f'data-video-sop="{sop}"' in page and f"/api/instances/{sop}/poster" in page
    assert "Video 1: 50 frames, 2.0 s" in page and "no pixel data" not in page and "1 images" not in page
    # The viewer's JSON has no frames for it: it is played, not decoded frame by frame.
    assert admin.get(f"/api/series/{series['series_uid']}/viewer").status_code == 422


def test_without_ffmpeg_the_page_says_so(tmp_path):
    stream = make_stream(tmp_path / "clip.ts", "h264", "ts")
    dicom = video_dicom(stream, tmp_path / "noffmpeg.dcm", H264_HP41)
    with running(tmp_path / "data", dicom_workers=0, video_ffmpeg=tmp_path / "missing" / "ffmpeg") as server:
        admin = first_admin(server)
        sop = send(server, dicom)
        study_uid = str(dcmread(dicom, stop_before_pixels=True).StudyInstanceUID)
        page = admin.get(f"/studies/{study_uid}").text
        assert "Video playback needs ffmpeg on the server (Debian package ffmpeg)" in page
        assert "Video 1: 50 frames, 2.0 s" in page
        state = admin.get(f"/api/instances/{sop}/video").json()
        assert state["state"] == "unavailable" and "needs ffmpeg" in state["reason"]
        assert admin.get(f"/api/instances/{sop}/video.mp4").status_code == 503
        poster = admin.get(f"/api/instances/{sop}/poster")  # an icon, never a broken image
        assert poster.status_code == 200 and poster.headers["Content-Type"].startswith("image/svg+xml")


def test_a_series_holding_an_image_and_a_video(server, admin, tmp_path):
    """The viewer gets the image, the player the video; the thumbnail is the image's."""
    stream = make_stream(tmp_path / "clip.ts", "h264", "ts")
    video = video_dicom(stream, tmp_path / "mixed-video.dcm", H264_HP41, instance_number=2)
    ds = dcmread(video, stop_before_pixels=True)
    image = make_study(tmp_path / "image", 1, study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID)[0]
    send(server, video)
    assert server.storescu(image, extra=("-R",)).returncode == 0
    series = admin.get(f"/api/studies/{ds.StudyInstanceUID}").json()["series"][0]
    assert (series["kind"], series["summary"]) == ("mixed", "2 instances: 1 image, 1 video")
    assert series["front"]["kind"] == "image"
    viewer = admin.get(f"/api/series/{ds.SeriesInstanceUID}/viewer").json()
    assert [i["sop_uid"] for i in viewer["instances"]] == [str(dcmread(image).SOPInstanceUID)]
    thumbnail = admin.get(f"/api/series/{ds.SeriesInstanceUID}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.headers["Content-Type"] == "image/jpeg"
    page = admin.get(f"/studies/{ds.StudyInstanceUID}").text
    assert f'data-video-sop="{ds.SOPInstanceUID}"' in page and "Video 2: 50 frames, 2.0 s" in page


def test_with_transcoding_off_only_remuxable_videos_play(tmp_path):
    """video_transcodes = 0, for the smallest boxes: H.264 still plays, MPEG-2 says why not."""
    library = VideoLibrary(tmp_path / "cache", VideoOptions(transcodes=0))
    mpeg2 = video_dicom(make_stream(tmp_path / "clip.m2v", "mpeg2", "raw"), tmp_path / "mpeg2.dcm", MPEG2_MPML)
    refused = library.prepare(mpeg2, "1.2.3")
    assert refused.state == FAILED and "video_transcodes = 0" in refused.reason
    h264 = video_dicom(make_stream(tmp_path / "clip.ts", "h264", "ts"), tmp_path / "h264.dcm", H264_HP41)
    deadline = time.monotonic() + 60
    while (state := library.prepare(h264, "1.2.4")).state != READY and time.monotonic() < deadline:
        time.sleep(0.1)
    assert state.state == READY and video_track(state.path)["nb_read_frames"] == "50"
