"""A picture as a VL Photographic Image instance (PS3.3 A.33.4, modality XC): a phone's or an
intra-oral camera's photo is a visible light photograph, whatever its file format.

A baseline 8-bit JPEG keeps its bytes: one fragment under JPEG Baseline (1.2.840.10008.1.2.4.50).
Every other picture (PNG, BMP, a progressive or 12-bit JPEG, a JPEG whose EXIF orientation
says it is to be turned) is decoded by Pillow and stored uncompressed, RGB or MONOCHROME2, so
that it shows upright everywhere: DICOM has no place for EXIF's orientation.  Decoding is
bounded: the size the file's header declares is checked before any pixel is decoded (a small
BMP may declare 60000 x 60000), and the pixels are written out a band at a time.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import cast

from PIL import Image, UnidentifiedImageError
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit

from appliance.archive import Archive
from appliance.attachments import jpeg, series
from appliance.made.storing import PIXEL_DATA, Payload

VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
MAX_PIXELS = 16_000_000  # decoded: 48 MB as RGB (turned upright and written a band at a time)
BAND_ROWS = 256


class BadPicture(ValueError):
    """A picture that cannot be attached: unreadable, or too large to decode."""


def make(
    archive: Archive,
    study_uid: str,
    path: Path,
    filename: str,
    spool: Path,
    converting: Callable[[], AbstractContextManager[None]],
) -> tuple[Dataset, Payload, UID]:
    """The instance's attributes, its pixels (as a file) and transfer syntax, for ``storing.store``.
    Decoded pixels go to a file in ``spool`` that the caller removes; decoding happens inside
    ``converting()`` (one at a time), keeping a JPEG's bytes does not."""
    title = series.title_of(filename, "Photo")
    ds = series.new_instance(archive, study_uid, VL_PHOTOGRAPHIC, "XC", title)
    ds.ImageType = ["DERIVED", "SECONDARY"]  # brought in, not acquired here
    ds.PatientOrientation = ""
    ds.AcquisitionContextSequence = []
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    facts = _jpeg_facts(path)
    if facts is not None and facts.photometric is not None and facts.orientation == 1:
        ds.Rows, ds.Columns = facts.rows, facts.columns
        _photometric(ds, facts.photometric)
        ds.LossyImageCompression, ds.LossyImageCompressionMethod = "01", "ISO_10918_1"
        return series.finish(ds), Payload(PIXEL_DATA, path, encapsulated=True), JPEGBaseline8Bit
    pixels = spool / (path.name + ".pixels")
    with converting(), _opened(path) as picture:
        orientation = picture.getexif().get(0x0112, 1)
        orientation = orientation if orientation in range(1, 9) else 1
        gray = picture.mode in ("1", "L", "LA", *_WIDE)
        ds.Columns, ds.Rows = picture.size if orientation < 5 else picture.size[::-1]
        _photometric(ds, "MONOCHROME2" if gray else "RGB")
        with open(pixels, "wb") as out:
            for band in upright_bands(picture, orientation, "L" if gray else "RGB"):
                out.write(band)
    # decoded from a lossy JPEG, or from a lossless PNG or BMP
    ds.LossyImageCompression = "01" if facts is not None else "00"
    if facts is not None:
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    return series.finish(ds), Payload(PIXEL_DATA, pixels), ExplicitVRLittleEndian


def _jpeg_facts(path: Path) -> jpeg.JpegFacts | None:
    with open(path, "rb") as f:
        if f.read(3) != b"\xff\xd8\xff":
            return None
    try:
        return jpeg.read(path)
    except jpeg.NotAJpeg as exc:
        raise BadPicture(f"not a readable JPEG: {exc}") from None


def _photometric(ds: Dataset, photometric: str) -> None:
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 1 if photometric == "MONOCHROME2" else 3
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """The picture with its header read and its size checked, nothing decoded yet."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadPicture(f"the picture declares more than {MAX_PIXELS:,} pixels; refused undecoded") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BadPicture(f"not a readable picture: {exc}"[:200]) from None
    try:
        width, height = picture.size
        if width * height > MAX_PIXELS:
            raise BadPicture(
                f"the picture declares {width} x {height} pixels, more than {MAX_PIXELS:,}; refused undecoded"
            )
        try:
            picture.load()
        except (OSError, ValueError, SyntaxError) as exc:
            raise BadPicture(f"the picture cannot be decoded: {exc}"[:200]) from None
        yield picture
    finally:
        picture.close()


# How each EXIF orientation (2-8) is undone (PIL.ImageOps.exif_transpose's table).
_UNDO = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
         5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
         8: Image.Transpose.ROTATE_90}  # fmt: skip


_WIDE = ("I", "I;16", "I;16B", "I;16L", "F")  # grays wider than 8 bits


def upright_bands(picture: Image.Image, orientation: int, mode: str) -> Iterator[bytes]:
    """The pixels turned upright as EXIF ``orientation`` says and in ``mode``, row by row, a
    band of rows at a time: each band is cut from the source where it lies and turned alone,
    so there is never a second copy of a whole picture (a 12 MP photo is 36 MB)."""
    width, height = picture.size
    rows = height if orientation < 5 else width
    # 16-bit and float grays fitted into 8 bits by their own maximum (a 12-bit one would be black by >> 8)
    scale = 1.0
    if picture.mode in _WIDE:
        _, highest = cast(tuple[float, float], picture.getextrema())  # one band: (lowest, highest)
        scale = 255 / max(1.0, float(highest))
    for top in range(0, rows, BAND_ROWS):
        bottom = min(rows, top + BAND_ROWS)
        band = picture.crop(_source_box(orientation, width, height, top, bottom))
        if orientation in _UNDO:
            band = band.transpose(_UNDO[orientation])
        if band.mode in _WIDE:
            band = band.convert("F").point(lambda v: v * scale).convert("I")
        yield (band if band.mode == mode else band.convert(mode)).tobytes()


def _source_box(orientation: int, width: int, height: int, top: int, bottom: int) -> tuple[int, int, int, int]:
    """Where rows ``top``..``bottom`` of the upright picture are in the stored one."""
    if orientation in (1, 2):
        return 0, top, width, bottom
    if orientation in (3, 4):
        return 0, height - bottom, width, height - top
    if orientation in (5, 6):  # upright rows are stored columns, left to right
        return top, 0, bottom, height
    return width - bottom, 0, width - top, height  # 7, 8: stored columns, right to left
