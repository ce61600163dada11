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
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit

from appliance.archive import Archive
from appliance.attachments import jpeg, series
from appliance.made.storing import Payload

VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
MAX_PIXELS = 16_000_000  # decoded: 48 MB as RGB, twice that while a photo is turned upright
BAND_ROWS = 256
PIXEL_DATA = 0x7FE00010


class BadPicture(ValueError):
    """A picture that cannot be attached: unreadable, or too large to decode."""


def make(archive: Archive, study_uid: str, path: Path, filename: str, spool: Path) -> tuple[Dataset, Payload, UID]:
    """The instance's attributes, its pixels (as a file) and transfer syntax, for ``storing.store``.
    Decoded pixels go to a file in ``spool`` that the caller removes."""
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
    with _opened(path) as picture:
        image = _upright(picture)
        ds.Columns, ds.Rows = image.size
        _photometric(ds, "MONOCHROME2" if image.mode == "L" else "RGB")
        with open(pixels, "wb") as out:
            for band in _bands(image):
                out.write(band)
        image.close()
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


def _upright(picture: Image.Image) -> Image.Image:
    """Turned as its EXIF orientation says, in RGB or grayscale: a new image only when needed
    (each copy of a 16 MP picture is 48 MB)."""
    image = picture
    if picture.getexif().get(0x0112, 1) in range(2, 9):
        image = ImageOps.exif_transpose(picture)
    if image.mode not in ("L", "RGB"):
        converted = image.convert("L" if image.mode in ("1", "I;16", "I", "F", "LA") else "RGB")
        if image is not picture:
            image.close()
        image = converted
    return image


def _bands(image: Image.Image) -> Iterator[bytes]:
    """The pixels, row by row, a band at a time (never a second copy of the whole picture)."""
    width, height = image.size
    for top in range(0, height, BAND_ROWS):
        yield image.crop((0, top, width, min(height, top + BAND_ROWS))).tobytes()
