"""Overlay planes (60xx) against DCMTK's dcmj2pnm, which draws them by default: graphics in
white and regions of interest darkening their surroundings, after the grayscale pipeline."""

from __future__ import annotations

import io
import logging
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from appliance import imaging
from support.dicomgen import make_dataset, write
from support.imagegen import add_overlay, corpus_file, gradient_image
from support.render import assert_close, dcmtk_render, ours, voi_arguments
from support.tools import dcmtk

WINDOW = ["+Wi", "1"]
LETTER_R = np.array([[1, 1, 1, 1, 0], [1, 0, 0, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 0],
                     [1, 0, 1, 0, 0], [1, 0, 0, 1, 0], [1, 0, 0, 0, 1]], bool)  # fmt: skip


def outline(rows: int, columns: int) -> np.ndarray:
    mask = np.zeros((rows, columns), bool)
    mask[[0, -1], :] = mask[:, [0, -1]] = True
    return mask


def with_overlays(tmp: Path) -> Path:
    """An outline running off the top and right edges, an orientation letter, and a region of
    interest whose plane covers the lower left."""
    ds = gradient_image()
    add_overlay(ds, 0x6000, [outline(13, 17)], (-3, 70), label="box")
    add_overlay(ds, 0x6002, [np.kron(LETTER_R, np.ones((2, 2), bool))], (5, 5))
    roi = np.zeros((20, 24), bool)
    roi[5:15, 6:18] = True
    add_overlay(ds, 0x601E, [roi], (40, 3), kind="R")
    return write(ds, tmp / "overlays.dcm")


def test_graphics_and_roi_planes_match_dcmtk(tmp_path: Path) -> None:
    path = with_overlays(tmp_path)
    mine = ours(path)
    assert_close(mine, dcmtk_render(path, 1, WINDOW, tmp_path, overlays=True), 1)
    plain = ours(path, overlays=False)
    assert_close(plain, dcmtk_render(path, 1, WINDOW, tmp_path), 1)
    assert (mine[8, 69:80] == 255).all() and (mine[0:9, 69] == 255).all()  # the outline's visible sides
    letter = np.kron(LETTER_R, np.ones((2, 2), bool))
    assert (mine[4:18, 4:14][letter] == 255).all()
    assert mine[50, 5] == plain[50, 5] >> 4 and mine[48, 12] == plain[48, 12]  # outside, inside the ROI
    assert np.array_equal(mine[25:39], plain[25:39])  # where no plane reaches


def test_real_world_roi_outline(tmp_path: Path) -> None:
    """pydicom's examples_overlay.dcm: a Siemens MR slice with a ROI outline in group 6000
    (a one-frame Multi-frame Overlay)."""
    path = corpus_file("examples_overlay.dcm")
    voi, window = voi_arguments(path)
    mine, plain = ours(path, window=window), ours(path, window=window, overlays=False)
    assert ((mine == 255) & (plain != 255)).sum() > 200
    assert_close(mine, dcmtk_render(path, 1, voi, tmp_path, overlays=True), 2)
    assert imaging.image_info(path)["overlays"] == [
        {"group": "6000", "type": "G", "label": "", "frames": 1, "embedded": False}
    ]


def test_multiframe_overlay_on_its_own_frames(tmp_path: Path) -> None:
    """Number of Frames in Overlay 2 from Image Frame Origin 3: on frames 3 and 4 only, each
    with its own bits; a plane without them (one frame) is drawn on every frame."""
    ds = gradient_image(frames=5)
    squares = [np.zeros((30, 30), bool) for _ in range(2)]
    squares[0][2:8, 2:8] = True
    squares[1][20:28, 10:25] = True
    add_overlay(ds, 0x6000, squares, (11, 21), frame_origin=3)
    add_overlay(ds, 0x6002, [outline(6, 6)], (1, 1))
    path = write(ds, tmp_path / "multi.dcm")
    whites = []
    for frame in range(1, 6):
        mine = ours(path, frame)
        assert_close(mine, dcmtk_render(path, frame, WINDOW, tmp_path, overlays=True), 1)
        whites.append(int((mine[10:40, 20:50] == 255).sum()))
        assert (mine[:6, :6][outline(6, 6)] == 255).all()
    assert whites == [0, 0, 36, 120, 0]


@pytest.mark.parametrize("columns", [3001, 3000])
def test_large_plane_with_negative_origin_read_from_disk(tmp_path: Path, columns: int) -> None:
    """A plane far larger than the image (1.1 MB of bits, so left on disk by the header read),
    starting above and left of it, rows not byte-aligned: only the rows on the image are read."""
    ds = gradient_image()
    plane = np.zeros((3000, columns), bool)
    plane[::7, :] = True
    plane[:, ::5] = True
    add_overlay(ds, 0x6000, [plane], (-1499, -1700))
    path = write(ds, tmp_path / f"large-{columns}.dcm")
    ours(path, overlays=False)  # the header and the windowing table, kept for the next call
    tracemalloc.start()
    mine = ours(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert_close(mine, dcmtk_render(path, 1, WINDOW, tmp_path, overlays=True), 1)
    assert (mine == 255).mean() > 0.2
    assert peak < 1_000_000, peak  # the plane's 9 million bits were never unpacked whole


def test_embedded_overlay_in_unused_high_bits(tmp_path: Path) -> None:
    """The retired form: Overlay Bits Allocated 16, Bit Position 15, no Overlay Data; the
    decoder clears bits above Bits Stored, so they are read from the stored values."""
    ds = gradient_image()
    values = np.frombuffer(ds.PixelData, np.uint16).reshape(64, 80).copy()
    values[20:30, 30:50] |= 1 << 15
    ds.PixelData = values.tobytes()
    for element, vr, value in ((0x0010, "US", 64), (0x0011, "US", 80), (0x0040, "CS", "G"), (0x0050, "SS", [1, 1]),
                               (0x0100, "US", 16), (0x0102, "US", 15)):  # fmt: skip
        ds.add_new((0x6000, element), vr, value)
    path = write(ds, tmp_path / "embedded.dcm")
    mine = ours(path)
    assert_close(mine, dcmtk_render(path, 1, WINDOW, tmp_path, overlays=True), 1)
    assert (mine[20:30, 30:50] == 255).all() and (mine[30:, :] != 255).any()
    ds[0x60000102].value = 11  # a bit of the stored value itself: not an overlay (as DCMTK)
    path = write(ds, tmp_path / "embedded-stored-bit.dcm")
    assert np.array_equal(ours(path), ours(path, overlays=False))
    assert imaging.image_info(path)["overlays"] == []


@pytest.mark.parametrize("syntax", ["+tb", "+ti"])
def test_big_endian_and_implicit_vr(tmp_path: Path, syntax: str) -> None:
    """The same file rewritten by dcmconv: in Explicit VR Big Endian each word of the OW
    overlay data has its bytes swapped; in Implicit VR the VRs come from the dictionary."""
    explicit = with_overlays(tmp_path)
    other = tmp_path / "other.dcm"
    run = subprocess.run([dcmtk("dcmconv"), syntax, str(explicit), str(other)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert np.array_equal(ours(other), ours(explicit))
    assert_close(ours(other), dcmtk_render(other, 1, WINDOW, tmp_path, overlays=True), 1)


def test_short_or_hostile_planes_are_not_drawn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Data shorter than declared is not drawn, as DCMTK does; nor, unlike DCMTK, a plane of
    more pixels than the cap, though its data is there: it is never read."""
    ds = gradient_image()
    add_overlay(ds, 0x6000, [outline(40, 40)], (1, 1))
    ds[0x60003000].value = ds[0x60003000].value[:100]  # 200 bytes declared
    ds.add_new((0x6002, 0x0010), "US", 65535)  # 65535 x 65535 pixels over 2 bytes of data
    for element, vr, value in ((0x0011, "US", 65535), (0x0050, "SS", [1, 1]), (0x0100, "US", 1), (0x0102, "US", 0),
                               (0x3000, "OW", b"\xff\xff")):  # fmt: skip
        ds.add_new((0x6002, element), vr, value)
    short = write(ds, tmp_path / "short.dcm")
    assert np.array_equal(ours(short), ours(short, overlays=False))
    assert_close(ours(short), dcmtk_render(short, 1, WINDOW, tmp_path, overlays=True), 1)
    add_overlay(ds, 0x6004, [np.ones((4100, 4100), bool)], (1, 1))
    path = write(ds, tmp_path / "hostile.dcm")
    with caplog.at_level(logging.INFO, logger="lightbox.imaging.overlays"):
        plain = ours(path, overlays=False)
        tracemalloc.start()
        mine = ours(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert np.array_equal(mine, plain) and imaging.image_info(path)["overlays"] == []
    assert peak < 1_000_000, peak
    reasons = " ".join(r.getMessage() for r in caplog.records)
    assert "group=6000 reason=overlay data shorter" in reasons and "group=6004 reason=plane of 4100x4100" in reasons


def test_colour_images_get_overlays_too(tmp_path: Path) -> None:
    """DCMTK draws overlays on grayscale images only; Lightbox on colour ones as well."""
    rgb = np.random.default_rng(3).integers(0, 200, (40, 60, 3), dtype=np.uint8)
    ds = make_dataset(SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0,
                      BitsAllocated=8, BitsStored=8, HighBit=7, rows=40, columns=60)  # fmt: skip
    ds.PixelData = rgb.tobytes()
    mask = outline(10, 20)
    add_overlay(ds, 0x6000, [mask], (11, 21))
    path = write(ds, tmp_path / "rgb.dcm")
    mine = ours(path)
    dcmtk_picture = dcmtk_render(path, 1, [], tmp_path, overlays=True)
    assert np.array_equal(dcmtk_picture, rgb)  # DCMTK leaves the overlay out
    drawn = np.zeros((40, 60), bool)
    drawn[10:20, 20:40] = mask
    assert (mine[drawn] == 255).all() and np.array_equal(mine[~drawn], rgb[~drawn])
    assert np.array_equal(ours(path, invert=True)[drawn], np.full((drawn.sum(), 3), 255))  # white after inversion


def test_stored_jpeg_is_not_passed_through_when_overlays_are_drawn(tmp_path: Path) -> None:
    ds = make_dataset(BitsAllocated=8, BitsStored=8, HighBit=7, rows=64, columns=64)
    ds.PixelData = np.full((64, 64), 100, np.uint8).tobytes()
    add_overlay(ds, 0x6000, [outline(20, 20)], (10, 10))
    plain = write(ds, tmp_path / "plain.dcm")
    jpeg = tmp_path / "baseline.dcm"
    run = subprocess.run([dcmtk("dcmcjpeg"), "+eb", str(plain), str(jpeg)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert imaging.render_frame(jpeg, 1, overlays=False).passed_through
    drawn = imaging.render_frame(jpeg, 1)
    assert not drawn.passed_through and drawn.overlays == 1
    assert (ours(jpeg)[9:29, 9:29][outline(20, 20)] == 255).all()


def test_overlay_layer_for_the_viewer(tmp_path: Path) -> None:
    """The layer laid over the picture without overlays gives the picture with them."""
    path = with_overlays(tmp_path)
    layer = imaging.overlay_layer(path, 1)
    assert layer.media_type == "image/png" and layer.overlays == 3
    rgba = np.asarray(Image.open(io.BytesIO(layer.data)))
    assert rgba.shape == (64, 80, 4) and set(np.unique(rgba[..., 3])) == {0, 240, 255}
    alpha = rgba[..., 3:4] / 255.0
    plain = ours(path, overlays=False)[..., None].astype(np.float64)
    composed = np.rint(rgba[..., :3] * alpha + plain * (1 - alpha))[..., 0]
    assert_close(composed, ours(path), 1)
    info = imaging.image_info(path)["overlays"]
    assert [(p["group"], p["type"], p["label"]) for p in info] == [
        ("6000", "G", "box"),
        ("6002", "G", ""),
        ("601E", "R", ""),
    ]
    assert imaging.raw_frame(path, 1).parameters["overlays"] == 3
    assert imaging.raw_frame(write(gradient_image(), tmp_path / "none.dcm"), 1).parameters["overlays"] == 0
