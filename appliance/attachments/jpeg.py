"""What a JPEG file's markers say, read up to its first scan without decoding anything: the
frame (process, precision, size, components and their sampling), the EXIF orientation and
Adobe's colour transform.  Enough to tell whether its bytes can be kept as they are under
DICOM's JPEG Baseline transfer syntax (PS3.5 8.2.1, A.4.1)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_MARKERS = 1000  # a file with more segments before its first scan is not one a camera made
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class JpegFacts:
    process: int  # the SOF marker: 0xC0 baseline, 0xC2 progressive, ...
    precision: int
    rows: int
    columns: int
    sampling: tuple[tuple[int, int], ...]  # (horizontal, vertical) per component
    orientation: int  # EXIF 1-8; 1 when none is said
    adobe_transform: int | None  # APP14: 0 RGB/CMYK, 1 YCbCr, 2 YCCK

    @property
    def photometric(self) -> str | None:
        """The Photometric Interpretation of the bytes as they are, or None when they cannot be
        kept as JPEG Baseline (not baseline, not 8-bit, CMYK, an unusual sampling)."""
        if self.process != 0xC0 or self.precision != 8:
            return None
        if len(self.sampling) == 1:
            return "MONOCHROME2"
        if len(self.sampling) != 3 or self.sampling[1] != (1, 1) or self.sampling[2] != (1, 1):
            return None
        if self.adobe_transform == 0:
            return "RGB" if self.sampling[0] == (1, 1) else None
        return {(1, 1): "YBR_FULL", (2, 1): "YBR_FULL_422", (2, 2): "YBR_FULL_422"}.get(self.sampling[0])


class NotAJpeg(ValueError):
    """Markers that make no JPEG frame."""


def read(path: Path) -> JpegFacts:
    orientation, adobe = 1, None
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            raise NotAJpeg("no JPEG start of image")
        for _ in range(MAX_MARKERS):
            marker = _next_marker(f)
            if marker in (0xD9, 0xDA):
                break
            (length,) = struct.unpack(">H", _exactly(f, 2))
            body = _exactly(f, length - 2)
            if marker in _SOF:
                if len(body) < 6 or len(body) < 6 + 3 * body[5]:
                    raise NotAJpeg("a JPEG frame header cut short")
                precision, rows, columns, count = struct.unpack(">BHHB", body[:6])
                sampling = tuple((body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(count))
                return JpegFacts(marker, precision, rows, columns, sampling, orientation, adobe)
            if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
                orientation = _orientation(body[6:])
            elif marker == 0xEE and body.startswith(b"Adobe") and len(body) >= 12:
                adobe = body[11]
    raise NotAJpeg("no JPEG frame header before the image data")


def _next_marker(f: BinaryIO) -> int:
    byte = _exactly(f, 1)
    while byte != b"\xff":  # garbage between segments: skipped, as decoders do
        byte = _exactly(f, 1)
    while byte == b"\xff":  # fill bytes
        byte = _exactly(f, 1)
    return byte[0]


def _exactly(f: BinaryIO, n: int) -> bytes:
    data = f.read(n) if n >= 0 else b""
    if len(data) != n:
        raise NotAJpeg("the JPEG ends inside its headers")
    return data


def _orientation(tiff: bytes) -> int:
    """EXIF's Orientation (0x0112) in IFD0 of the TIFF structure; 1 when absent or unreadable."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    (ifd,) = struct.unpack(order + "I", tiff[4:8])  # where IFD0 begins
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    for i in range(min(count, 200)):
        entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag == 0x0112 and kind == 3:
            (value,) = struct.unpack(order + "H", entry[8:10])
            return value if 1 <= value <= 8 else 1
    return 1
