"""The frame routes over real HTTP: a bottle app with appliance.web.frames installed behind a
guard, served by waitress on 127.0.0.1, over an archive filled through the one ingest path."""

from __future__ import annotations

import io
import json
import logging
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bottle
import numpy as np
import pydicom
import pydicom.data
import pytest
import waitress
from PIL import Image
from pydicom.dataset import Dataset

from appliance.archive import Archive
from appliance.web import frames
from support.dicomgen import make_dataset, write
from support.imagegen import TEST_FILES, add_overlay, gradient_image, palette_variant

SESSION_HEADER = "X-Test-Session"
BLOCK = (slice(20, 44), slice(20, 60))  # the overlay file's graphic plane, a filled block


def guard(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Stands in for the web UI's login check: a header or 401."""

    def checked(*args: Any, **kwargs: Any) -> Any:
        if bottle.request.get_header(SESSION_HEADER) != "let-me-in":
            return bottle.HTTPResponse(
                json.dumps({"error": "login required"}), 401, {"Content-Type": "application/json"}
            )
        return handler(*args, **kwargs)

    return checked


class Served:
    def __init__(self, port: int, uids: dict[str, str], series: dict[str, str], archive: Archive) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.archive = archive
        self.uids = uids
        self.series = series
        self.data = archive.data_dir

    def get(self, path: str, login: bool = True) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.base + path, headers={SESSION_HEADER: "let-me-in"} if login else {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


def us_loop() -> Dataset:
    region = Dataset()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 47, 31
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = region.PhysicalDeltaY = 0.01
    ds = make_dataset(modality="US", rows=32, columns=48, NumberOfFrames=4, FrameTime=40.0,
                      SequenceOfUltrasoundRegions=[region], BitsAllocated=8, BitsStored=8, HighBit=7)  # fmt: skip
    ds.PixelData = np.stack([np.full((32, 48), 60 * i, np.uint8) for i in range(4)]).tobytes()
    return ds


def with_block_overlay() -> Dataset:
    ds = gradient_image()
    add_overlay(ds, 0x6000, [np.ones((24, 40), bool)], (21, 21))
    return ds


def ultrasound_palette(folder: Path) -> Path:
    """examples_palette.dcm as an ultrasound machine writes it: 8-bit values in its 16-bit
    tables, under a descriptor of 16 bits; an instance of its own."""
    path = palette_variant(folder, "low", 16)
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(path)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("frames")
    incoming = root / "incoming"
    incoming.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "examples_ybr_color.dcm", "examples_palette.dcm"):
        shutil.copy(TEST_FILES / name, incoming / name)
    bomb = make_dataset(rows=4, columns=8)
    bomb.Rows = bomb.Columns = 60000
    write(bomb, incoming / "bomb.dcm")
    write(us_loop(), incoming / "us.dcm")
    write(with_block_overlay(), incoming / "overlay.dcm")
    ultrasound_palette(incoming)
    write(make_dataset(), incoming / "gone.dcm")  # its stored file is deleted below
    ct_series = pydicom.dcmread(incoming / "CT_small.dcm").SeriesInstanceUID
    for i in (2, 3):  # two more slices of CT_small's series, so it has an order and a middle
        ds = pydicom.dcmread(incoming / "CT_small.dcm")
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.InstanceNumber = i
        ds.save_as(incoming / f"CT_{i}.dcm")
    archive = Archive(root / "data")
    summary = archive.import_paths([incoming])
    assert summary.rejected_count == 0, summary
    uids = {p.stem: pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in incoming.iterdir()}
    series = {p.stem: pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID for p in incoming.iterdir()}
    series["CT"] = ct_series
    archive.file_path(archive.instance(uids["gone"]).file_key).unlink()
    app = bottle.Bottle()
    frames.install(app, archive, guard)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield Served(server.effective_port, uids, series, archive)
    server.close()
    thread.join(10)
    archive.close()


def image(body: bytes) -> Image.Image:
    return Image.open(io.BytesIO(body))


def test_every_route_needs_the_guard(served: Served) -> None:
    sop, series = served.uids["MR_small"], served.series["MR_small"]
    for path in (f"/api/instances/{sop}/frames/1/rendered", f"/api/instances/{sop}/frames/1/raw",
                 f"/api/instances/{sop}/frames/1/overlay", f"/api/series/{series}/thumbnail",
                 f"/api/series/{series}/viewer"):  # fmt: skip
        status, _, body = served.get(path, login=False)
        assert status == 401 and json.loads(body) == {"error": "login required"}
        assert served.get(path)[0] == 200


def test_rendered_formats_fit_and_window(served: Served) -> None:
    base = f"/api/instances/{served.uids['MR_small']}/frames/1/rendered"
    status, headers, body = served.get(base)
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and image(body).size == (64, 64)
    status, headers, body = served.get(base + "?format=png&width=32")
    assert headers["Content-Type"] == "image/png" and image(body).size == (32, 32)
    assert image(served.get(base + "?format=webp&height=16&quality=50")[2]).format == "WEBP"
    narrow = np.asarray(image(served.get(base + "?format=png&window=0,1")[2]))
    same = np.asarray(image(served.get(base + "?format=png&window-center=0&window-width=1")[2]))
    assert np.array_equal(narrow, same) and set(np.unique(narrow)) <= {0, 255}
    default = np.asarray(image(served.get(base + "?format=png")[2]))
    assert not np.array_equal(default, narrow)
    inverted = np.asarray(image(served.get(base + "?format=png&invert=1")[2]))
    assert np.array_equal(inverted, 255 - default)


def test_download_names_no_patient_data(served: Served) -> None:
    status, headers, _ = served.get(f"/api/instances/{served.uids['CT_small']}/frames/1/rendered?download=1&format=png")
    assert status == 200
    disposition = headers["Content-Disposition"]
    assert disposition == 'attachment; filename="image-1-frame-1.png"'


@pytest.mark.parametrize(
    ("query", "status"),
    [("?format=gif", 400), ("?width=0", 400), ("?width=99999", 400), ("?quality=abc", 400), ("?window=1", 400),
     ("?window=10,-5", 400), ("?window=a,b", 400), ("?function=CUBIC&window=1,2", 400), ("?overlays=yes", 400)],
)  # fmt: skip
def test_bad_queries_get_400(served: Served, query: str, status: int) -> None:
    code, headers, body = served.get(f"/api/instances/{served.uids['MR_small']}/frames/1/rendered{query}")
    assert code == status and "error" in json.loads(body)


def test_unknown_things_get_404(served: Served) -> None:
    sop = served.uids["MR_small"]
    assert served.get("/api/instances/1.2.3.4/frames/1/rendered")[0] == 404
    assert served.get(f"/api/instances/{sop}/frames/2/rendered")[0] == 404
    assert served.get(f"/api/instances/{sop}/frames/0/rendered")[0] == 404
    assert served.get(f"/api/instances/{sop}/frames/x/rendered")[0] == 400
    assert served.get("/api/series/1.2.3.4/thumbnail")[0] == 404
    assert served.get("/api/series/1.2.3.4/viewer")[0] == 404


def test_bomb_is_refused_and_the_server_keeps_serving(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    sop = served.uids["bomb"]
    for route in ("rendered", "raw"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lightbox.web.frames"):
            status, _, body = served.get(f"/api/instances/{sop}/frames/1/{route}")
        assert status == 413 and "cap" in json.loads(body)["error"]
        lines = [r.getMessage() for r in caplog.records if r.name == "lightbox.web.frames"]
        assert len(lines) == 1 and "status=413" in lines[0] and sop not in lines[0]
    assert served.get(f"/api/series/{served.series['bomb']}/thumbnail")[0] == 413
    viewer = json.loads(served.get(f"/api/series/{served.series['bomb']}/viewer")[2])
    assert viewer["image"]["too_large"] is True
    assert served.get(f"/api/instances/{served.uids['MR_small']}/frames/1/rendered")[0] == 200


def test_missing_stored_file_is_a_clean_500(served: Served) -> None:
    status, headers, body = served.get(f"/api/instances/{served.uids['gone']}/frames/1/rendered")
    assert status == 500 and json.loads(body) == {"error": "stored file unreadable (FileNotFoundError)"}
    assert served.get(f"/api/instances/{served.uids['MR_small']}/frames/1/rendered")[0] == 200


def test_multiframe_jpeg_frames_as_stored(served: Served) -> None:
    sop = served.uids["examples_ybr_color"]
    stored = (TEST_FILES / "examples_ybr_color.dcm").read_bytes()
    bodies = [served.get(f"/api/instances/{sop}/frames/{n}/rendered")[2] for n in (1, 15, 30)]
    assert all(b[:2] == b"\xff\xd8" and b in stored for b in bodies) and len(set(bodies)) == 3
    assert served.get(f"/api/instances/{sop}/frames/31/rendered")[0] == 404


def test_raw_frame_over_http(served: Served) -> None:
    status, headers, body = served.get(f"/api/instances/{served.uids['CT_small']}/frames/1/raw")
    assert status == 200 and headers["Content-Type"] == "application/octet-stream"
    parameters = json.loads(headers["X-Lightbox-Pixels"])
    values = np.frombuffer(body, "<i2").reshape(parameters["rows"], parameters["columns"])
    assert np.array_equal(values, pydicom.dcmread(TEST_FILES / "CT_small.dcm").pixel_array)
    assert parameters["intercept"] == -1024.0 and parameters["window"]["width"] > 0
    assert served.get(f"/api/instances/{served.uids['examples_palette']}/frames/1/raw")[0] == 422


def test_thumbnail_comes_from_the_middle_instance(served: Served) -> None:
    middle = served.archive.middle_instance(served.series["CT"])
    assert middle is not None and middle.instance_number == 2  # of 1, 2, 3
    assert served.archive.middle_instance("1.2.3.4") is None


def test_series_thumbnail_is_cached_on_disk(served: Served) -> None:
    status, headers, body = served.get(f"/api/series/{served.series['CT']}/thumbnail")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert max(image(body).size) == 160
    cached = list((served.data / "cache" / "thumbnails").iterdir())
    assert any(p.read_bytes() == body for p in cached)
    assert served.get(f"/api/series/{served.series['CT']}/thumbnail")[2] == body


def test_viewer_json(served: Served) -> None:
    ct = json.loads(served.get(f"/api/series/{served.series['CT']}/viewer")[2])
    assert [i["instance_number"] for i in ct["instances"]] == [1, 2, 3]
    assert ct["image"]["pixel_spacing"] and ct["image"]["rows"] == 128
    assert ct["patient"]["name"] and ct["study"]["date"] and ct["series"]["modality"] == "CT"
    assert {"Soft tissue", "Lung", "Bone"} <= {p["name"] for p in ct["presets"]}
    us = json.loads(served.get(f"/api/series/{served.series['us']}/viewer")[2])
    assert us["frames"] == 4 and us["image"]["frame_time_ms"] == 40.0
    assert us["image"]["ultrasound_regions"][0]["mm_per_pixel"] == pytest.approx([0.1, 0.1])
    mr = json.loads(served.get(f"/api/series/{served.series['MR_small']}/viewer")[2])
    assert mr["presets"][0]["source"] == "file"


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_cine_exported_as_animation(served: Served, fmt: str) -> None:
    status, headers, body = served.get(f"/api/instances/{served.uids['us']}/animation?format={fmt}&download=1")
    assert status == 200 and headers["Content-Type"] == f"image/{fmt}"
    assert headers["Content-Disposition"] == f'attachment; filename="cine-1.{fmt}"'
    animated = image(body)
    assert animated.n_frames == 4 and animated.size == (48, 32)
    greys, durations = [], []
    for n in range(4):
        animated.seek(n)
        greys.append(animated.convert("L").getpixel((24, 16)))
        durations.append(animated.info["duration"])
    assert durations == [40] * 4
    assert greys == sorted(greys) and greys[0] < greys[-1]  # the frames in order
    assert served.get(f"/api/instances/{served.uids['us']}/animation?format=mp4")[0] == 400


def test_overlays_burned_in_unless_asked_not_to(served: Served) -> None:
    base = f"/api/instances/{served.uids['overlay']}/frames/1/rendered?format=png"
    status, headers, body = served.get(base)
    assert status == 200 and headers["X-Lightbox-Overlays"] == "1"
    on, off = np.asarray(image(body)), np.asarray(image(served.get(base + "&overlays=0")[2]))
    assert (on[BLOCK] == 255).all() and (off[BLOCK] < 255).all()
    outside = np.ones(on.shape, bool)
    outside[BLOCK] = False
    assert np.array_equal(on[outside], off[outside])
    assert served.get(f"/api/instances/{served.uids['MR_small']}/frames/1/rendered")[1]["X-Lightbox-Overlays"] == "0"
    raw = served.get(f"/api/instances/{served.uids['overlay']}/frames/1/raw")[1]
    assert json.loads(raw["X-Lightbox-Pixels"])["overlays"] == 1


def test_thumbnail_and_exports_show_overlays(served: Served) -> None:
    thumb = np.asarray(image(served.get(f"/api/series/{served.series['overlay']}/thumbnail")[2]).convert("L"))
    assert thumb.shape == (128, 160)  # 64 x 80 fitted into 160: twice as large
    assert thumb[64, 80] >= 250 and thumb[16, 80] < 100  # in the block; above it, the gradient
    animation = f"/api/instances/{served.uids['overlay']}/animation?format=gif"
    on, off = (image(served.get(animation + query)[2]).convert("L") for query in ("", "&overlays=0"))
    assert on.getpixel((40, 30)) >= 250 and off.getpixel((40, 30)) < 200
    download = served.get(f"/api/instances/{served.uids['overlay']}/frames/1/rendered?format=png&download=1")[2]
    assert (np.asarray(image(download))[BLOCK] == 255).all()


def test_overlay_layer_route(served: Served) -> None:
    sop = served.uids["overlay"]
    status, headers, body = served.get(f"/api/instances/{sop}/frames/1/overlay")
    assert status == 200 and headers["Content-Type"] == "image/png"
    layer = np.asarray(image(body))
    assert layer.shape == (64, 80, 4) and (layer[BLOCK] == 255).all()
    assert layer[..., 3].sum() == 255 * 24 * 40  # nothing outside the block
    assert served.get(f"/api/instances/{sop}/frames/2/overlay")[0] == 404
    empty = np.asarray(image(served.get(f"/api/instances/{served.uids['MR_small']}/frames/1/overlay")[2]))
    assert empty.shape == (64, 64, 4) and not empty[..., 3].any()


def test_ultrasound_palette_is_not_black(served: Served) -> None:
    """8-bit values under a 16-bit descriptor: the same picture as the file they came from."""
    sop = served.uids["palette-low-16"]
    picture = np.asarray(image(served.get(f"/api/instances/{sop}/frames/1/rendered?format=png")[2]))
    original = served.get(f"/api/instances/{served.uids['examples_palette']}/frames/1/rendered?format=png")[2]
    assert picture.mean() > 15 and np.array_equal(picture, np.asarray(image(original)))
    thumb = np.asarray(image(served.get(f"/api/series/{served.series['palette-low-16']}/thumbnail")[2]))
    assert thumb.mean() > 15
