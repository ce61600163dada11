"""WADO-RS and WADO-URI against a real `lightbox serve`: pydicom's test files (a CT, a JPEG 2000
and a JPEG-LS MR, a JPEG multi-frame), a native multi-frame and a PDF sent by DCMTK's storescu, read
back with dicomweb-client (HTTP Basic) and compared with what was sent."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from requests.exceptions import HTTPError

from support.corpus import storescu_copy
from support.dicomgen import dataset_bytes, make_study, write
from support.imagegen import corpus_file, gradient_image
from support.mediagen import FFMPEG, H264_HP41, make_stream, odd_pdf, pdf_dicom, video_dicom
from support.tools import require
from support.web import ADMIN, ADMIN_PASSWORD, base_url

EXPLICIT_LE = "1.2.840.10008.1.2.1"
CORPUS = {
    "ct": "CT_small.dcm",  # explicit VR little endian, signed, one frame
    "j2k": "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
    "jls": "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    "ybr": "examples_ybr_color.dcm",  # 30 JPEG baseline frames, YBR_FULL_422
}


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"dicom_workers": 0}


@pytest.fixture(scope="module")
def sent(server, admin, tmp_path_factory) -> dict[str, Path]:
    """The corpus files and a PDF (in the CT's study), each sent by storescu."""
    folder = tmp_path_factory.mktemp("sent")
    files: dict[str, Path] = {}
    for name, file in CORPUS.items():
        files[name] = storescu_copy(corpus_file(file), folder / file)  # each its own study
    image = make_study(folder / "image", 1, patient_name="Paper^Pia", patient_id="WADO-1")[0]
    pdf = folder / "letter.pdf"
    files["pdf_bytes"] = pdf
    odd_pdf(pdf)
    files["image"] = image
    files["multiframe"] = write(gradient_image(frames=10), folder / "multiframe.dcm")  # 10 native frames
    files["pdf"] = pdf_dicom(pdf, folder / "pdf.dcm", study_from=image)
    # Each compressed file with storescu's option that proposes its syntax (else it would decode it).
    proposals = {"j2k": ("-xv",), "jls": ("-xt",), "ybr": ("-xy",)}
    plain = [path for name, path in files.items() if name not in (*proposals, "pdf_bytes")]
    for paths, extra in [(plain, ()), *(([files[name]], option) for name, option in proposals.items())]:
        result = server.storescu(*paths, extra=extra)
        assert result.returncode == 0 and result.stderr.count("(Success)") == len(paths), result.stderr
    return files


@pytest.fixture(scope="module")
def session(admin) -> requests.Session:
    basic = requests.Session()
    basic.auth = (ADMIN, ADMIN_PASSWORD)
    basic.trust_env = False
    return basic


@pytest.fixture(scope="module")
def client(server, session) -> DICOMwebClient:
    return DICOMwebClient(url=base_url(server) + "/dicom-web", session=session)


def uids(path: Path) -> tuple[str, str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def parts(answer: requests.Response) -> list[tuple[str, bytes]]:
    """The parts of a multipart/related answer: (Content-Type as written, content)."""
    assert answer.status_code == 200, answer.text
    boundary = answer.headers["Content-Type"].split("boundary=")[1].strip('"').encode()
    found = []
    for piece in answer.content.split(b"--" + boundary)[1:-1]:
        head, _, body = piece.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        found.append((headers["Content-Type"], body.removesuffix(b"\r\n")))
    return found


@pytest.mark.parametrize("name", ["ct", "j2k", "jls", "ybr", "multiframe", "pdf"])
def test_instance_comes_back_as_stored_with_its_uids(server, client, session, sent, name):
    study, series, sop = uids(sent[name])
    ds = client.retrieve_instance(study, series, sop)
    assert str(ds.SOPInstanceUID) == sop and str(ds.StudyInstanceUID) == study
    assert str(ds.file_meta.MediaStorageSOPInstanceUID) == sop
    original = pydicom.dcmread(sent[name])
    assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    # The part is the stored file: Lightbox's meta header, then the dataset as sent, byte for byte.
    url = f"{base_url(server)}/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    [(part_type, body)] = parts(session.get(url, headers={"Accept": 'multipart/related; type="application/dicom"'}))
    assert part_type == f"application/dicom; transfer-syntax={original.file_meta.TransferSyntaxUID}"
    assert body[128:132] == b"DICM" and body.endswith(dataset_bytes(sent[name]))


def test_study_and_series_retrieval_are_the_stored_files(server, client, sent, session):
    study, series, _sop = uids(sent["image"])
    back = client.retrieve_study(study)
    assert sorted(str(ds.SOPInstanceUID) for ds in back) == sorted(uids(sent[n])[2] for n in ("image", "pdf"))
    [only] = client.retrieve_series(study, series)
    assert str(only.SOPInstanceUID) == uids(sent["image"])[2]
    # The answer's parts are the stored files as they are on disk, meta header included.
    answer = session.get(f"{base_url(server)}/dicom-web/studies/{study}/series/{series}",
                         headers={"Accept": 'multipart/related; type="application/dicom"'})  # fmt: skip
    [(part_type, body)] = parts(answer)
    assert part_type == "application/dicom; transfer-syntax=" + str(only.file_meta.TransferSyntaxUID)
    assert body.endswith(dataset_bytes(sent["image"])) and body[128:132] == b"DICM"


@pytest.mark.parametrize("name", ["j2k", "jls", "ybr"])
def test_transcoded_to_explicit_little_endian_keeps_uids_and_pixels(client, sent, name):
    study, series, sop = uids(sent[name])
    ds = client.retrieve_instance(study, series, sop, media_types=(("application/dicom", EXPLICIT_LE),))
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert str(ds.SOPInstanceUID) == sop and str(ds.file_meta.MediaStorageSOPInstanceUID) == sop
    assert str(ds.SeriesInstanceUID) == series and str(ds.StudyInstanceUID) == study
    original = pydicom.dcmread(sent[name])
    assert np.array_equal(ds.pixel_array, original.pixel_array)


def test_a_syntax_we_cannot_make_is_406(server, session, sent):
    study, series, sop = uids(sent["ct"])
    url = f"{base_url(server)}/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    jpeg = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    answer = session.get(url, headers={"Accept": jpeg})
    assert answer.status_code == 406 and "error" in answer.json()
    assert session.get(url, headers={"Accept": "image/png"}).status_code == 406
    either = jpeg + ', multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2; q=0.5'
    answer = session.get(url, headers={"Accept": either})
    assert answer.status_code == 200
    [(part_type, _body)] = parts(answer)
    assert part_type.endswith("transfer-syntax=1.2.840.10008.1.2")


def test_unknown_uids_are_404(client, sent):
    study, series, sop = uids(sent["ct"])
    for call in (
        lambda: client.retrieve_study("1.2.3.4"),
        lambda: client.retrieve_series(study, "1.2.3.4"),
        lambda: client.retrieve_instance(study, series, "1.2.3.4"),
        lambda: client.retrieve_instance("1.2.3.4", series, sop),  # the instance, under another study
        lambda: client.retrieve_series_metadata(study, "1.2.3.4"),
        lambda: client.retrieve_instance_frames(study, series, "1.2.3.4", [1]),
    ):
        with pytest.raises(HTTPError) as caught:
            call()
        assert caught.value.response.status_code == 404


def test_series_metadata_is_dicom_json_with_resolvable_bulk_data(server, client, session, sent):
    study, series, sop = uids(sent["ct"])
    [metadata] = client.retrieve_series_metadata(study, series)
    original = pydicom.dcmread(sent["ct"])
    assert metadata["00080018"] == {"vr": "UI", "Value": [sop]}
    assert metadata["00100010"]["Value"][0]["Alphabetic"] == str(original.PatientName)
    assert metadata["00280010"]["Value"] == [original.Rows]
    pixel_uri = metadata["7FE00010"]["BulkDataURI"]
    assert pixel_uri == f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/bulkdata/7FE00010"
    [pixels] = client.retrieve_bulkdata(base_url(server) + pixel_uri)
    assert pixels == original.PixelData
    assert client.retrieve_instance_metadata(study, series, sop) == metadata
    # Every attribute as pydicom encodes it (PS3.18 F.2), binary values by reference instead.
    expected = original.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=lambda _e: "bulk")
    assert metadata.keys() == expected.keys()
    for key, value in expected.items():
        if "BulkDataURI" in value:
            assert metadata[key]["BulkDataURI"].endswith(f"/instances/{sop}/bulkdata/{key}"), key
        else:
            assert metadata[key] == value, key
    html = session.get(f"{base_url(server)}/dicom-web/studies/{study}/metadata", headers={"Accept": "text/html"})
    assert html.status_code == 406  # XML is tested in test_dicomweb_xml.py
    assert len(client.retrieve_study_metadata(study)) == 1


def test_metadata_of_a_compressed_image_and_its_pixel_bulk_data(server, client, sent):
    study, series, sop = uids(sent["j2k"])
    metadata = client.retrieve_instance_metadata(study, series, sop)
    assert metadata["7FE00010"]["vr"] == "OB"
    frames = client.retrieve_bulkdata(base_url(server) + metadata["7FE00010"]["BulkDataURI"])
    original = pydicom.dcmread(sent["j2k"])
    assert frames == [pydicom.encaps.get_frame(original.PixelData, 0, number_of_frames=1)]


@pytest.mark.parametrize("name", ["j2k", "jls", "ybr"])
def test_compressed_frames_come_as_stored_by_default(client, sent, name):
    """dicomweb-client's default Accept is type="*/*": the stored compressed frame."""
    study, series, sop = uids(sent[name])
    original = pydicom.dcmread(sent[name])
    count = int(original.get("NumberOfFrames", 1))
    wanted = [1, count] if count > 1 else [1]
    frames = client.retrieve_instance_frames(study, series, sop, wanted)
    assert frames == [pydicom.encaps.get_frame(original.PixelData, n - 1, number_of_frames=count) for n in wanted]


@pytest.mark.parametrize("name", ["j2k", "ybr", "multiframe", "ct"])
def test_frames_as_octet_stream_decode_to_the_pixels(client, sent, name):
    study, series, sop = uids(sent[name])
    original = pydicom.dcmread(sent[name])
    count = int(original.get("NumberOfFrames", 1))
    wanted = [count] if count > 1 else [1]
    [frame] = client.retrieve_instance_frames(study, series, sop, wanted,
                                              media_types=(("application/octet-stream", EXPLICIT_LE),))  # fmt: skip
    expected = original.pixel_array[wanted[0] - 1] if count > 1 else original.pixel_array
    assert frame == expected.astype(expected.dtype.newbyteorder("<")).tobytes()


def test_frames_as_ohif_asks(server, session, sent):
    """OHIF: type=application/octet-stream; transfer-syntax=*: the stored frame, its syntax named."""
    study, series, sop = uids(sent["jls"])
    url = f"{base_url(server)}/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/1"
    answer = session.get(url, headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"})
    [(part_type, body)] = parts(answer)
    original = pydicom.dcmread(sent["jls"])
    assert part_type == f"application/octet-stream; transfer-syntax={original.file_meta.TransferSyntaxUID}"
    assert body == pydicom.encaps.get_frame(original.PixelData, 0, number_of_frames=1)
    jls = session.get(url, headers={"Accept": 'multipart/related; type="image/jls"'})
    assert parts(jls)[0][0].startswith("image/jls")
    assert session.get(url, headers={"Accept": 'multipart/related; type="image/jp2"'}).status_code == 406


def test_bad_and_missing_frames(server, session, sent):
    study, series, sop = uids(sent["multiframe"])
    url = f"{base_url(server)}/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/"
    for bad in ("0", "x", "1,,2", "-1"):
        answer = session.get(url + bad)
        assert answer.status_code == 400, bad
        assert "error" in answer.json()
    assert session.get(url + "11").status_code == 404
    assert session.get(url + "1,10").status_code == 200


def test_pdf_through_its_bulk_data_uri(server, client, session, sent):
    study, series, sop = uids(sent["pdf"])
    metadata = client.retrieve_instance_metadata(study, series, sop)
    uri = base_url(server) + metadata["00420011"]["BulkDataURI"]
    pdf = sent["pdf_bytes"].read_bytes()
    assert client.retrieve_bulkdata(uri) == [pdf]
    answer = session.get(uri, headers={"Accept": "application/pdf"})
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/pdf"
    assert answer.content == pdf
    tail = session.get(uri, headers={"Accept": "application/pdf", "Range": "bytes=-16"})
    assert tail.status_code == 206 and tail.content == pdf[-16:]
    # OHIF asks for the accept query parameter, and for the PDF as the instance rendered.
    assert session.get(uri, params={"accept": "application/pdf"}).content == pdf
    rendered = session.get(f"{base_url(server)}/dicom-web/studies/{study}/series/{series}/instances/{sop}/rendered")
    assert rendered.headers["Content-Type"] == "application/pdf" and rendered.content == pdf


def test_rendered_and_thumbnails(server, client, session, sent):
    study, series, sop = uids(sent["ybr"])
    jpeg = client.retrieve_instance_rendered(study, series, sop, media_types=("image/jpeg",))
    assert jpeg[:2] == b"\xff\xd8"
    png = client.retrieve_instance_frames_rendered(study, series, sop, [30], media_types=("image/png",))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    small = session.get(f"{base_url(server)}/dicom-web/studies/{study}/series/{series}/instances/{sop}/rendered",
                        params={"viewport": "64,64"}, headers={"Accept": "image/png"})  # fmt: skip
    from PIL import Image

    assert max(Image.open(io.BytesIO(small.content)).size) == 64
    base = f"{base_url(server)}/dicom-web/studies/{study}"
    for path in ("/thumbnail", f"/series/{series}/thumbnail", f"/series/{series}/instances/{sop}/thumbnail",
                 f"/series/{series}/instances/{sop}/frames/2/thumbnail"):  # fmt: skip
        answer = session.get(base + path)
        assert answer.status_code == 200 and answer.content[:2] == b"\xff\xd8", path
    series_rendered = session.get(base + f"/series/{series}/rendered", headers={"Accept": "image/jpeg"})
    assert [t for t, _ in parts(series_rendered)] == ["image/jpeg"]
    assert session.get(base + f"/series/{series}/instances/{sop}/rendered",
                       headers={"Accept": "image/gif"}).status_code == 406  # fmt: skip


def test_wado_uri(server, session, sent):
    study, series, sop = uids(sent["j2k"])
    query = {"requestType": "WADO", "studyUID": study, "seriesUID": series, "objectUID": sop}
    for path in ("/dicom-web/wado", "/wado"):
        stored = session.get(base_url(server) + path, params={**query, "contentType": "application/dicom"})
        assert stored.status_code == 200 and stored.headers["Content-Type"] == "application/dicom"
        assert stored.content.endswith(dataset_bytes(sent["j2k"]))
    decoded = session.get(base_url(server) + "/wado",
                          params={**query, "contentType": "application/dicom", "transferSyntax": EXPLICIT_LE})  # fmt: skip
    ds = pydicom.dcmread(io.BytesIO(decoded.content))
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE and str(ds.SOPInstanceUID) == sop
    assert np.array_equal(ds.pixel_array, pydicom.dcmread(sent["j2k"]).pixel_array)
    picture = session.get(base_url(server) + "/wado", params={**query, "rows": "32", "columns": "32"})
    assert picture.headers["Content-Type"] == "image/jpeg" and picture.content[:2] == b"\xff\xd8"
    assert session.get(base_url(server) + "/wado", params={**query, "objectUID": "1.2.3"}).status_code == 404
    assert session.get(base_url(server) + "/wado", params={**query, "requestType": "X"}).status_code == 400
    gif = session.get(base_url(server) + "/wado", params={**query, "contentType": "image/gif"})
    assert gif.status_code == 406


def test_login_is_required_and_retrievals_are_audited(server, session, sent):
    study, series, sop = uids(sent["ct"])
    url = f"{base_url(server)}/dicom-web/studies/{study}"
    anonymous = requests.get(url, timeout=30)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert anonymous.headers["Content-Type"].startswith("application/json")
    assert session.get(url).status_code == 200
    events = session.get(base_url(server) + "/api/audit").json()["events"]
    details = [e["detail"] for e in events if e["study_uid"] == study]
    assert "DICOMweb: study retrieved, 1 instance" in details


def test_a_video_is_rendered_as_mp4_with_ranges(server, session, tmp_path):
    """The video's MP4 (made by the server with ffmpeg, a remux here) behind the rendered URL."""
    require(FFMPEG)
    stream = make_stream(tmp_path / "clip.ts", "h264", "ts", frames=25)
    path = video_dicom(stream, tmp_path / "video.dcm", H264_HP41, frames=25)
    result = server.storescu(path, extra=("-R", "-xn"))
    assert result.returncode == 0 and "(Success)" in result.stderr, result.stderr
    study, series, sop = uids(path)
    url = f"{base_url(server)}/dicom-web/studies/{study}/series/{series}/instances/{sop}/rendered"
    assert session.get(url, headers={"Accept": "image/jpeg"}).status_code == 406
    deadline = time.monotonic() + 60
    while (answer := session.get(url, headers={"Accept": "video/mp4"})).status_code == 503:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "video/mp4"
    assert answer.history and answer.history[0].status_code == 307
    assert answer.content[4:8] == b"ftyp"
    piece = session.get(url, headers={"Accept": "video/mp4", "Range": "bytes=0-99"})
    assert piece.status_code == 206 and piece.content == answer.content[:100]


def test_a_stored_file_gone_missing_is_a_clean_500(server, session, tmp_path):
    """The index names a file the storage lacks (a disk fault, a hand-deleted file): each route
    answers 500 with its reason, as the web UI's picture routes do, and the server goes on."""
    path = make_study(tmp_path / "gone", 1, patient_id="WADO-GONE", rows=16, columns=16)[0]
    assert server.storescu(path).returncode == 0
    study, series, sop = uids(path)
    (stored,) = [p for p in (server.data / "storage").rglob("*.dcm") if sop.encode() in p.read_bytes()]
    stored.unlink()
    base = f"{base_url(server)}/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    for route, accept in (
        ("/rendered", "image/jpeg"),
        ("/frames/1", "multipart/related; type=application/octet-stream"),
    ):
        answer = session.get(base + route, headers={"Accept": accept})
        assert answer.status_code == 500, route
        assert "stored file unreadable (FileNotFoundError)" in answer.text, route
    assert session.get(f"{base_url(server)}/dicom-web/studies?limit=1").status_code == 200
