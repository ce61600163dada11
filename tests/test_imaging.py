"""The pixel pipeline (appliance.imaging) against DCMTK's dcmj2pnm/dcml2pnm, an independent
renderer given the same window, over pydicom's test corpus and synthetic images."""

from __future__ import annotations

import io
import subprocess
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pydicom.data
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless, RLELossless

from appliance import imaging
from appliance.imaging import ImagingError, ImagingOptions, NoSuchFrame, Thumbnails, TooLarge, Window
from support.dicomgen import make_dataset, write
from support.imagegen import TEST_FILES, corpus_file, palette_variant
from support.render import assert_close, dcmtk_render, ours, voi_arguments
from support.tools import dcmtk

# DCMTK decodes JPEG (dcmj2pnm) and JPEG-LS (dcml2pnm) but not JPEG 2000; for those, and for
# files DCMTK cannot parse, it renders an uncompressed copy that pydicom decoded.
J2K = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}
JPEG_LS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
NOT_DECODABLE = {  # known-broken files of pydicom's corpus, refused with an ImagingError
    "JPEG-lossy.dcm": "12-bit JPEG with a misplaced marker (pydicom needs GDCM for it)",
    "JPEG2000-embedded-sequence-delimiter.dcm": "a sequence delimiter inside the codestream",
    "MR_truncated.dcm": "pixel data shorter than declared",
    "badVR.dcm": "Number of Frames '1A'",
    "image_dfl.dcm": "Deflated Explicit VR Little Endian, which Lightbox refuses at ingest",
}
# DCMTK cannot parse this one and pydicom cannot write it back (a VR of two spaces).
NO_REFERENCE = {"SC_rgb_jpeg.dcm"}
DCMTK_CANNOT_PARSE = {"693_J2KI.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"}
# dcmj2pnm 3.6.7 renders these 32-bit big-endian doses unlike their identical little-endian
# twins rtdose* (differences up to 255); we render both alike (test_big_endian_matches_...).
DCMTK_WRONG = {"rtdose_expb.dcm", "rtdose_expb_1frame.dcm"}
# Lossy JPEG: libjpeg builds differ in IDCT rounding (12-bit) and chroma upsampling (4:2:2).
TOLERANCE = {"JPGExtended.dcm": 4, "examples_ybr_color.dcm": 3}
DEFAULT_TOLERANCE = 2


def corpus() -> list[Path]:
    """The images pydicom ships (its optional downloadable files are not fetched)."""
    files = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(TEST_FILES.glob("*.dcm")):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue
            if "Rows" in ds:
                files.append(path)
    return files


CORPUS = corpus()


def uncompressed_copy(path: Path, tmp: Path) -> Path:
    ds = pydicom.dcmread(path)
    ds.decompress()
    copy = tmp / f"decoded-{path.name}"
    ds.save_as(copy, enforce_file_format=True)
    return copy


@pytest.mark.parametrize(
    "path", [p for p in CORPUS if p.name not in set(NOT_DECODABLE) | DCMTK_WRONG | NO_REFERENCE], ids=lambda p: p.name
)
def test_corpus_matches_dcmtk(path: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    frames = int(ds.get("NumberOfFrames") or 1)
    reference, tool = path, "dcmj2pnm"
    if syntax in J2K or path.name in DCMTK_CANNOT_PARSE:
        reference = uncompressed_copy(path, tmp_path)
    elif syntax in JPEG_LS:
        tool = "dcml2pnm"
    voi, window = voi_arguments(path)
    for frame in sorted({1, frames}):
        expected = dcmtk_render(reference, frame, voi, tmp_path, tool, overlays=True)
        assert_close(ours(path, frame, window=window), expected, TOLERANCE.get(path.name, DEFAULT_TOLERANCE))


@pytest.mark.parametrize("name", sorted(NOT_DECODABLE))
def test_broken_corpus_files_are_refused_cleanly(name: str) -> None:
    with pytest.raises(ImagingError):
        imaging.render_frame((corpus_file(name)), 1)


@pytest.mark.parametrize("name", sorted(NO_REFERENCE))
def test_files_without_a_reference_still_render(name: str) -> None:
    ds = pydicom.dcmread(corpus_file(name), stop_before_pixels=True)
    assert ours(corpus_file(name)).shape[:2] == (ds.Rows, ds.Columns)


@pytest.mark.parametrize(
    ("little", "big"),
    [
        ("MR_small.dcm", "MR_small_bigendian.dcm"),
        ("rtdose.dcm", "rtdose_expb.dcm"),
        ("SC_rgb_small_odd.dcm", "SC_rgb_small_odd_big_endian.dcm"),
    ],
)
def test_big_endian_matches_little_endian(little: str, big: str) -> None:
    window = Window(1025985.0, 456030.0) if little.startswith("rtdose") else None
    a = ours((corpus_file(little)), window=window)
    b = ours((corpus_file(big)), window=window)
    assert np.array_equal(a, b)


# ---------------------------------------------------------------------- synthetic images


def gradient(rows: int = 64, columns: int = 80, top: int = 4095) -> np.ndarray:
    return (np.linspace(0, top, rows * columns).reshape(rows, columns)).astype(np.uint16)


def save(ds: Dataset, tmp: Path, name: str, syntax: str | None = None) -> Path:
    path = write(ds, tmp / name)
    if syntax:
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(path, enforce_file_format=True)
    return path


def test_monochrome1_is_inverted_like_dcmtk(tmp_path: Path) -> None:
    ds = make_dataset(PhotometricInterpretation="MONOCHROME1", WindowCenter=2048, WindowWidth=4096, rows=64, columns=80)
    ds.PixelData = gradient().tobytes()
    path = save(ds, tmp_path, "mono1.dcm")
    mine = ours(path)
    assert mine[0, 0] == 255 and mine[-1, -1] == 0  # low values white
    assert_close(mine, dcmtk_render(path, 1, ["+Wi", "1"], tmp_path), 1)
    # Presentation LUT Shape IDENTITY on MONOCHROME1 means "already as it should look".
    ds.PresentationLUTShape = "IDENTITY"
    identity = save(ds, tmp_path, "mono1-identity.dcm")
    assert ours(identity)[0, 0] == 0
    assert_close(ours(identity), dcmtk_render(identity, 1, ["+Wi", "1"], tmp_path), 1)


def test_presentation_lut_inverse_on_monochrome2(tmp_path: Path) -> None:
    ds = make_dataset(WindowCenter=2048, WindowWidth=4096, PresentationLUTShape="INVERSE", rows=64, columns=80)
    ds.PixelData = gradient().tobytes()
    path = save(ds, tmp_path, "inverse.dcm")
    assert_close(ours(path), dcmtk_render(path, 1, ["+Wi", "1"], tmp_path), 1)
    assert ours(path)[0, 0] == 255


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_signed_pixels_with_rescale(tmp_path: Path, bits: int) -> None:
    top = (1 << (bits - 1)) - 1
    values = np.linspace(-top - 1, top, 64 * 80).reshape(64, 80).astype(np.int8 if bits == 8 else np.int16)
    ds = make_dataset(BitsAllocated=8 if bits == 8 else 16, BitsStored=bits, HighBit=bits - 1, PixelRepresentation=1,
                      RescaleSlope=2, RescaleIntercept=-100, WindowCenter=-100, WindowWidth=2 * top, rows=64, columns=80)  # fmt: skip
    stored = values.astype(np.int16) & ((1 << bits) - 1) if bits < 16 else values  # two's complement in bits
    ds.PixelData = (
        stored.astype(values.dtype.newbyteorder("<")).tobytes() if bits != 12 else stored.astype("<u2").tobytes()
    )
    path = save(ds, tmp_path, f"signed{bits}.dcm")
    mine = ours(path)
    assert mine[0, 0] == 0 and mine[-1, -1] == 255
    assert_close(mine, dcmtk_render(path, 1, ["+Wi", "1"], tmp_path), 1)


def test_modality_lut_sequence(tmp_path: Path) -> None:
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    lut.add_new(0x00283006, "US", [(i * i) >> 8 for i in range(4096)])  # LUT Data: a curve, not a rescale
    lut.ModalityLUTType = "OD"
    ds = make_dataset(ModalityLUTSequence=[lut], WindowCenter=32768, WindowWidth=65536, rows=64, columns=80)
    ds.PixelData = gradient().tobytes()
    path = save(ds, tmp_path, "mlut.dcm")
    assert_close(ours(path), dcmtk_render(path, 1, ["+Wi", "1"], tmp_path), 1)


def test_voi_lut_sequence(tmp_path: Path) -> None:
    lut = Dataset()
    lut.LUTDescriptor = [2048, 1024, 12]
    lut.add_new(0x00283006, "US", [min(4095, int(4095 * (i / 2047) ** 0.5)) for i in range(2048)])
    ds = make_dataset(VOILUTSequence=[lut], rows=64, columns=80)
    ds.PixelData = gradient().tobytes()
    path = save(ds, tmp_path, "voilut.dcm")
    mine = ours(path)
    assert mine[0, 0] == 0 and mine[-1, -1] == 255
    assert_close(mine, dcmtk_render(path, 1, ["+Wl", "1"], tmp_path), 1)


def test_sigmoid_window_matches_dcmtk(tmp_path: Path) -> None:
    ds = make_dataset(WindowCenter=2000, WindowWidth=1500, VOILUTFunction="SIGMOID", rows=64, columns=80)
    ds.PixelData = gradient().tobytes()
    path = save(ds, tmp_path, "sigmoid.dcm")
    linear = ours(
        save(
            make_dataset(WindowCenter=2000, WindowWidth=1500, rows=64, columns=80, PixelData=gradient().tobytes()),
            tmp_path,
            "lin.dcm",
        )
    )
    mine = ours(path)
    assert not np.array_equal(mine, linear)
    assert_close(mine, dcmtk_render(path, 1, ["+Wi", "1"], tmp_path), 1)


def test_linear_exact_window(tmp_path: Path) -> None:
    """dcmj2pnm 3.6.7 ignores LINEAR_EXACT ("unknown value ... ignoring") and applies LINEAR
    (x = 125 gives 193, not 191), so this is checked against C.11.2.1.3.1 directly."""
    values = np.array([[0, 50, 75, 100, 125, 150, 200, 1000]], dtype=np.uint16)
    ds = make_dataset(WindowCenter=100, WindowWidth=100, VOILUTFunction="LINEAR_EXACT", rows=1, columns=8)
    ds.PixelData = values.tobytes()
    # x <= c - w/2 -> 0; x > c + w/2 -> 255; else ((x - c) / w + 0.5) * 255
    assert ours(save(ds, tmp_path, "exact.dcm")).tolist() == [[0, 0, 64, 128, 191, 255, 255, 255]]


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL"])
def test_planar_configuration(tmp_path: Path, photometric: str) -> None:
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    by_pixel = make_dataset(SamplesPerPixel=3, PhotometricInterpretation=photometric, PlanarConfiguration=0,
                            BitsAllocated=8, BitsStored=8, HighBit=7, rows=24, columns=40)  # fmt: skip
    by_pixel.PixelData = rgb.tobytes()
    by_plane = make_dataset(SamplesPerPixel=3, PhotometricInterpretation=photometric, PlanarConfiguration=1,
                            BitsAllocated=8, BitsStored=8, HighBit=7, rows=24, columns=40)  # fmt: skip
    by_plane.PixelData = rgb.transpose(2, 0, 1).tobytes()
    a, b = save(by_pixel, tmp_path, "pc0.dcm"), save(by_plane, tmp_path, "pc1.dcm")
    assert np.array_equal(ours(a), ours(b))
    if photometric == "RGB":
        assert np.array_equal(ours(a), rgb)
    assert_close(ours(b), dcmtk_render(b, 1, [], tmp_path), 2)  # YBR -> RGB rounding


def test_palette_colour() -> None:
    path = corpus_file("examples_palette.dcm")
    image = ours(path)
    assert image.ndim == 3 and image.shape[2] == 3
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 16  # colours, not grey


@pytest.mark.parametrize(("tables", "declared_bits"), [("low", 16), ("copied", 16), ("copied", 8), ("true16", 8)])
def test_palette_depth_judged_like_dcmtk(tmp_path: Path, tables: str, declared_bits: int) -> None:
    """Ultrasound machines write 8-bit tables under a descriptor of 16 bits: dcmj2pnm shows
    them black unless told to check the depth (+Mc, --check-lut-depth), as Lightbox always does."""
    path = palette_variant(tmp_path, tables, declared_bits)
    mine = ours(path)
    assert np.array_equal(mine, dcmtk_render(path, 1, ["+Mc"], tmp_path))
    assert np.array_equal(mine, ours(corpus_file("examples_palette.dcm")))
    assert mine.mean() > 15  # examples_palette is mostly dark background; black would be 0


def test_palette_packed_one_entry_per_byte(tmp_path: Path) -> None:
    """Entries packed one per byte are 8-bit whatever the descriptor says (dcmj2pnm, even with
    +Mc, takes the descriptor's 16 bits and shows black): the same picture as under the right
    descriptor, which DCMTK renders."""
    right = palette_variant(tmp_path, "packed", 8)
    mine = ours(palette_variant(tmp_path, "packed", 16))
    assert np.array_equal(mine, ours(right))
    assert np.array_equal(mine, dcmtk_render(right, 1, ["+Mc"], tmp_path))


def test_palette_big_endian(tmp_path: Path) -> None:
    """Explicit VR Big Endian (retired) swaps each word of the OW tables; dcmconv writes one."""
    little = palette_variant(tmp_path, "true16", 16)
    big = tmp_path / "palette-big-endian.dcm"
    run = subprocess.run([dcmtk("dcmconv"), "+tb", str(little), str(big)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert pydicom.dcmread(big, stop_before_pixels=True).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2"
    assert np.array_equal(ours(big), ours(little))
    assert np.array_equal(ours(big), dcmtk_render(big, 1, ["+Mc"], tmp_path))


def segmented(values: list[int]) -> bytes:
    """A segmented table (PS3.3 C.7.9.2): the first value as a discrete segment, then one
    linear segment per further value, 255 entries apart."""
    words = [0, 1, values[0]]
    for value in values[1:]:
        words += [1, 255, value]
    return np.asarray(words, "<u2").tobytes()


@pytest.mark.parametrize("scale", [1, 257])
def test_segmented_palette(tmp_path: Path, scale: int) -> None:
    """Segmented tables (DCMTK has none) expanded by pydicom, then judged like the others:
    8-bit values under a 16-bit descriptor give the same colours as true 16-bit ones."""
    ds = make_dataset(
        PhotometricInterpretation="PALETTE COLOR", BitsAllocated=8, BitsStored=8, HighBit=7, rows=1, columns=256
    )
    ds.PixelData = np.arange(256, dtype=np.uint8).tobytes()
    for colour, ends in (("Red", [0, 255]), ("Green", [255, 0]), ("Blue", [0, 0])):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"Segmented{colour}PaletteColorLookupTableData", segmented([v * scale for v in ends]))
    image = ours(save(ds, tmp_path, "segmented.dcm"))
    assert image[0, 0].tolist() == [0, 255, 0] and image[0, 255].tolist() == [255, 0, 0]
    assert image[0, 128].tolist() == [128, 127, 0]


def multiframe(tmp_path: Path, frames: int = 5, syntax: str | None = None) -> Path:
    stack = np.stack([np.full((32, 48), 200 * (i + 1), dtype=np.uint16) for i in range(frames)])
    stack[:, :4, :4] = 0
    ds = make_dataset(NumberOfFrames=frames, WindowCenter=600, WindowWidth=1200, rows=32, columns=48)
    ds.PixelData = stack.tobytes()
    return save(ds, tmp_path, f"multi-{syntax or 'raw'}.dcm", syntax)


@pytest.mark.parametrize("syntax", [None, RLELossless, JPEG2000Lossless])
def test_multiframe_one_frame_at_a_time(tmp_path: Path, syntax: str | None) -> None:
    path = multiframe(tmp_path, syntax=syntax)
    centre = [ours(path, n)[16, 24] for n in range(1, 6)]
    # stored 200, 400, ... through window 600/1200 (LINEAR): ((x - 599.5) / 1199 + 0.5) * 255
    assert centre == [round(((200 * n - 599.5) / 1199 + 0.5) * 255) if 200 * n < 1200 else 255 for n in range(1, 6)]
    with pytest.raises(NoSuchFrame):
        imaging.render_frame(path, 6)
    with pytest.raises(NoSuchFrame):
        imaging.render_frame(path, 0)


def test_default_window_ignores_outliers(tmp_path: Path) -> None:
    values = np.random.default_rng(1).normal(1000, 50, (100, 100)).astype(np.uint16)
    values[0, :3] = [0, 65535, 65535]  # dead and hot pixels
    ds = make_dataset(BitsStored=16, HighBit=15, rows=100, columns=100)
    ds.PixelData = values.tobytes()
    path = save(ds, tmp_path, "nowindow.dcm")
    image = ours(path)
    body = image[1:, :]
    assert body.std() > 40  # min/max would squeeze the body into a few grey levels
    info = imaging.raw_frame(path, 1).parameters["window"]
    assert 900 < info["center"] < 1100 and info["width"] < 1000


def test_eight_bit_without_window_is_shown_as_stored(tmp_path: Path) -> None:
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    ds = make_dataset(BitsAllocated=8, BitsStored=8, HighBit=7, rows=16, columns=16)
    ds.PixelData = values.tobytes()
    assert np.array_equal(ours(save(ds, tmp_path, "eight.dcm")), values)


def test_caller_window_and_fit(tmp_path: Path) -> None:
    ds = make_dataset(WindowCenter=2048, WindowWidth=4096, rows=64, columns=80)
    ds.PixelData = gradient().tobytes()
    path = save(ds, tmp_path, "fit.dcm")
    narrow = ours(path, window=(100, 10))
    assert (narrow == 255).mean() > 0.9
    small = Image.open(io.BytesIO(imaging.render_frame(path, 1, size=(40, None)).data))
    assert small.size == (40, 32) and small.format == "JPEG"
    webp = Image.open(io.BytesIO(imaging.render_frame(path, 1, size=(20, 20), fmt="webp").data))
    assert webp.size == (20, 16) and webp.format == "WEBP"


def bomb() -> Dataset:
    """A header declaring 60,000 x 60,000 pixels over 64 bytes of pixel data."""
    ds = make_dataset(rows=4, columns=8)
    ds.Rows = ds.Columns = 60000
    return ds


def test_memory_cap_refuses_before_decoding(tmp_path: Path) -> None:
    path = save(bomb(), tmp_path, "bomb.dcm")
    with pytest.raises(TooLarge):
        imaging.render_frame(path, 1)
    small = save(make_dataset(rows=64, columns=64, NumberOfFrames=8), tmp_path, "eight-frames.dcm")
    with pytest.raises(TooLarge):  # 64 x 64 x 8 frames x 2 bytes = 64 KiB > 0.05 MiB
        imaging.render_frame(small, 1, options=ImagingOptions(max_decode_mb=0))


def test_jpeg_baseline_frame_served_as_stored() -> None:
    path = corpus_file("examples_ybr_color.dcm")  # 30 frames of YBR_FULL_422 JPEG
    rendered = imaging.render_frame(path, 7)
    assert rendered.passed_through and rendered.media_type == "image/jpeg"
    with open(path, "rb") as f:
        assert rendered.data in f.read()  # the very bytes of the stored fragment
    assert not imaging.render_frame(path, 7, size=(100, 100)).passed_through
    assert not imaging.render_frame(path, 7, fmt="png").passed_through


def test_raw_frame_values_and_parameters() -> None:
    ct = corpus_file("CT_small.dcm")  # signed, rescaled, no window
    raw = imaging.raw_frame(ct, 1)
    ds = pydicom.dcmread(ct)
    p = raw.parameters
    assert (p["rows"], p["columns"], p["dtype"]) == (128, 128, "int16")
    assert np.array_equal(np.frombuffer(raw.data, "<i2").reshape(128, 128), ds.pixel_array)
    assert (p["slope"], p["intercept"]) == (float(ds.RescaleSlope), float(ds.RescaleIntercept))
    assert p["window"]["explanation"].startswith("default")
    path = corpus_file("MR_small.dcm")
    p = imaging.raw_frame(path, 1).parameters
    ds = pydicom.dcmread(path)
    assert p["window"]["center"] == float(ds.WindowCenter) and p["window"]["width"] == float(ds.WindowWidth)
    with pytest.raises(ImagingError):
        imaging.raw_frame(corpus_file("examples_rgb_color.dcm"), 1)


def test_thumbnails_are_cached_with_a_cap_and_purged_by_instance(tmp_path: Path) -> None:
    cache = tmp_path / "thumbs"
    thumbs = Thumbnails(cache, ImagingOptions(thumbnail_size=64, thumbnail_cache_mb=1))
    paths = [Path(p) for p in (corpus_file("CT_small.dcm"), corpus_file("examples_palette.dcm"))]
    first = thumbs.get(paths[0], "1.2.3")
    assert max(Image.open(io.BytesIO(first.data)).size) == 64
    assert thumbs.get(paths[0], "1.2.3").data == first.data and len(list(cache.iterdir())) == 1
    thumbs.cache.max_bytes = len(first.data) + 10  # room for one: the older one goes
    thumbs.get(paths[1], "1.2.4")
    names = list(cache.iterdir())
    assert len(names) == 1 and names[0] == thumbs.cache.path(thumbs.key(paths[1], 1), ".jpg", "1.2.4")
    assert all("CT" not in n.name and "1.2.4" not in n.name for n in names)
    thumbs.cache.max_bytes = 1 << 20
    thumbs.get(paths[1], "1.2.4", 1), thumbs.get(paths[0], "1.2.3")
    assert thumbs.cache.purge(["1.2.4", "9.9"]) == 1  # each entry of the instance, no other
    assert [n.name for n in cache.iterdir()] == [thumbs.cache.path(thumbs.key(paths[0], 1), ".jpg", "1.2.3").name]
    (cache / ("0" * 64 + ".jpg")).write_bytes(b"named before groups")
    Thumbnails(cache)  # a start drops entries that could not be purged
    assert len(list(cache.iterdir())) == 1


def test_image_info_calibration(tmp_path: Path) -> None:
    region = Dataset()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 10, 20
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 300, 400
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = region.PhysicalDeltaY = 0.02
    ds = make_dataset(SequenceOfUltrasoundRegions=[region], FrameTime=33.3, NumberOfFrames=2, rows=8, columns=8)
    ds.PixelData = np.zeros((2, 8, 8), np.uint16).tobytes()
    info = imaging.image_info(save(ds, tmp_path, "us.dcm"))
    assert info["frames"] == 2 and info["frame_time_ms"] == 33.3
    assert info["ultrasound_regions"][0]["mm_per_pixel"] == pytest.approx([0.2, 0.2])
    assert info["pixel_spacing"] is None


def test_enhanced_multiframe_functional_groups(tmp_path: Path) -> None:
    """Rescale from the Shared Functional Groups, a window per frame from the Per-frame ones."""
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 1, -1000, "HU"
    shared = Dataset()
    shared.PixelValueTransformationSequence = [transform]
    per_frame = []
    for center in (0, 500):
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = center, 100
        group = Dataset()
        group.FrameVOILUTSequence = [voi]
        per_frame.append(group)
    ds = make_dataset(NumberOfFrames=2, rows=8, columns=8, SharedFunctionalGroupsSequence=[shared],
                      PerFrameFunctionalGroupsSequence=per_frame)  # fmt: skip
    ds.PixelData = np.full((2, 8, 8), 1000, np.uint16).tobytes()  # modality value 0
    path = save(ds, tmp_path, "enhanced.dcm")
    assert ours(path, 1)[0, 0] == round(((0 - (0 - 0.5)) / 99 + 0.5) * 255)  # mid-grey
    assert ours(path, 2)[0, 0] == 0
    assert imaging.image_info(path)["windows"][0]["center"] == 0


def test_options_come_from_the_settings_table() -> None:
    from appliance import config

    assert ImagingOptions.from_settings(config.load(environ={})) == ImagingOptions()
    changed = config.load({"imaging_max_decode_mb": 5, "thumbnail_size": 96, "thumbnail_cache_mb": 2}, environ={})
    assert ImagingOptions.from_settings(changed) == ImagingOptions(5, 96, 2)


def test_at_most_two_decodes_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight callers (the web server's threads) render at once; two decode, the others wait."""
    path = save(make_dataset(rows=64, columns=80, WindowCenter=2048, WindowWidth=4096), tmp_path, "g.dcm")
    decoding, most, lock = 0, 0, threading.Lock()
    real_render = imaging.render

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal decoding, most
        with lock:
            decoding += 1
            most = max(most, decoding)
        try:
            time.sleep(0.05)  # long enough for every other caller to arrive
            return real_render(*args, **kwargs)
        finally:
            with lock:
                decoding -= 1

    monkeypatch.setattr(imaging, "render", counted)
    with ThreadPoolExecutor(8) as pool:
        pictures = list(pool.map(lambda _: imaging.render_frame(path, 1, fmt="png").data, range(16)))
    assert most == 2
    assert len(set(pictures)) == 1 and Image.open(io.BytesIO(pictures[0])).size == (80, 64)
