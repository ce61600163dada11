"""One stored DICOM file as a source of frames: its header, a size check, one frame at a time.

The header is read once (``stop_before_pixels``); the file stays positioned at the Pixel Data
element so that a frame can be decoded, or its encoded bytes taken, without reading the rest.
Frames are decoded one at a time through pydicom's decoders (``index=n``): a multi-frame object
is never held in memory whole.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import as_pixel_options
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from appliance.imaging.overlays import Plane, planes

_PIXEL_TAGS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}
_LONG_LENGTH_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR"}
HEADER_CACHE_SIZE = 32
DEFER_BYTES = 1 << 20
_DECODE_ERRORS = (
    ValueError,
    RuntimeError,
    NotImplementedError,
    AttributeError,
    KeyError,
    TypeError,
    struct.error,
    EOFError,
)


class ImagingError(Exception):
    """The file cannot be shown (not an image, broken pixel data, unsupported encoding)."""


class TooLarge(ImagingError):
    """Decoding would need more memory than the configured cap allows."""


class NoSuchFrame(ImagingError):
    """The frame number is outside 1..Number of Frames."""


@dataclass(frozen=True)
class PixelElement:
    keyword: str
    vr: str | None  # None in implicit VR
    value_offset: int
    length: int


class FrameSource:
    """An open stored file with its header parsed; use as a context manager."""

    def __init__(self, path: Path, max_decode_bytes: int) -> None:
        self.path = Path(path)
        self._file: BinaryIO = open(self.path, "rb")
        try:
            stat = os.fstat(self._file.fileno())
            self.ds, self.transfer_syntax, self.pixels, self.overlays = _header(
                str(self.path), stat.st_mtime_ns, stat.st_size
            )
            self.rows = _whole(self.ds, "Rows", 0)
            self.columns = _whole(self.ds, "Columns", 0)
            self.samples = _whole(self.ds, "SamplesPerPixel", 1)
            self.bits_allocated = _whole(self.ds, "BitsAllocated", 0)
            self.frames = max(_whole(self.ds, "NumberOfFrames", 1), 1)
            self.photometric = str(self.ds.get("PhotometricInterpretation", "")).strip().upper()
            if not (self.rows and self.columns and self.bits_allocated):
                raise ImagingError("no Rows, Columns or Bits Allocated: not an image")
            if self.declared_bytes > max_decode_bytes:
                raise TooLarge(
                    f"{self.rows}x{self.columns}x{self.frames} frames x{self.samples} samples x"
                    f"{self.bits_allocated} bits needs {self.declared_bytes} bytes, "
                    f"over the cap of {max_decode_bytes}"
                )
        except BaseException:
            self._file.close()
            raise

    @property
    def declared_bytes(self) -> int:
        """Rows x columns x frames x samples x bytes per sample, as the header declares them."""
        return self.rows * self.columns * self.frames * self.samples * self.bits_allocated // 8

    @property
    def encapsulated(self) -> bool:
        return self.transfer_syntax.is_encapsulated

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def check_frame(self, index: int) -> None:
        if not 0 <= index < self.frames:
            raise NoSuchFrame(f"frame {index + 1} of {self.frames}")

    def decode(self, index: int) -> tuple[np.ndarray, str]:
        """Frame ``index`` (from 0) as an array (rows, columns[, samples]) and the photometric
        interpretation of that array (YBR is converted to RGB by the decoder)."""
        self.check_frame(index)
        try:
            decoder = get_decoder(self.transfer_syntax)
        except NotImplementedError as exc:
            raise ImagingError(f"no decoder for transfer syntax {self.transfer_syntax}") from exc
        try:
            options = as_pixel_options(self.ds, transfer_syntax_uid=self.transfer_syntax, number_of_frames=self.frames)
            options["pixel_keyword"] = self.pixels.keyword
            if self.pixels.vr:
                options["pixel_vr"] = self.pixels.vr
            self._file.seek(self.pixels.value_offset)
            array, meta = decoder.as_array(self._file, index=index, validate=True, **options)
        except _DECODE_ERRORS as exc:
            raise ImagingError(f"cannot decode frame {index + 1}: {exc}") from exc
        photometric = str(meta.get("photometric_interpretation", self.photometric)).strip().upper()
        return array, photometric

    def stored_values(self, index: int) -> np.ndarray:
        """Frame ``index`` of native (not encapsulated) single-sample pixel data as stored,
        row by row, unused high bits included: the decoder clears them, but retired overlays
        live there."""
        self.check_frame(index)
        if self.encapsulated or self.samples != 1 or self.bits_allocated not in (8, 16):
            raise ImagingError("stored values are read from native 8 or 16-bit single-sample pixel data only")
        size = self.rows * self.columns * self.bits_allocated // 8
        data = self.read_at(self.pixels.value_offset + index * size, size)
        if len(data) < size or (index + 1) * size > self.pixels.length:
            raise ImagingError(f"pixel data ends within frame {index + 1}")
        order = "<" if self.transfer_syntax.is_little_endian else ">"
        return np.frombuffer(data, np.uint8 if self.bits_allocated == 8 else order + "u2")

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of the file from ``offset`` (for values left on disk)."""
        self._file.seek(offset)
        return self._file.read(length)

    def encoded_frame(self, index: int) -> bytes:
        """The encoded bytes of frame ``index`` of encapsulated pixel data, as stored."""
        self.check_frame(index)
        if not self.encapsulated:
            raise ImagingError("pixel data is not encapsulated")
        self._file.seek(self.pixels.value_offset)
        extended = None
        if "ExtendedOffsetTable" in self.ds and "ExtendedOffsetTableLengths" in self.ds:
            extended = (self.ds.ExtendedOffsetTable, self.ds.ExtendedOffsetTableLengths)
        try:
            return get_frame(self._file, index, number_of_frames=self.frames, extended_offsets=extended)
        except (ValueError, struct.error, EOFError) as exc:
            raise ImagingError(f"cannot read frame {index + 1}: {exc}") from exc


def stored_header(path: Path) -> tuple[Dataset, UID, PixelElement]:
    """The header of a stored file and where its pixel data starts, with no size check: for
    callers that stream the pixel data rather than decode it (video)."""
    stat = os.stat(path)
    ds, syntax, pixels, _planes = _header(str(path), stat.st_mtime_ns, stat.st_size)
    return ds, syntax, pixels


@functools.lru_cache(maxsize=HEADER_CACHE_SIZE)
def _header(path: str, mtime_ns: int, size: int) -> tuple[Dataset, UID, PixelElement, tuple[Plane, ...]]:
    """The parsed header of a file and its overlay planes, kept for the next frames of the same
    file (a cine loop asks for 30 in a row).  Keyed by modification time and size too, although
    stored files never change (their names are their hashes).  Callers only read the dataset."""
    with open(path, "rb") as f:
        ds = _read_header(f)
        syntax = UID(ds.file_meta.TransferSyntaxUID)
        if syntax == DeflatedExplicitVRLittleEndian:  # ingest refuses it too
            raise ImagingError("deflated transfer syntax is not supported")
        return ds, syntax, _pixel_element(f, syntax), planes(ds)


def _read_header(f: BinaryIO) -> Dataset:
    try:
        # Values over 1 MB (a private blob, an ICC profile) are left on disk until asked for.
        ds = pydicom.dcmread(f, stop_before_pixels=True, defer_size=DEFER_BYTES)
    except (InvalidDicomError, ValueError, struct.error, EOFError, OSError, KeyError) as exc:
        raise ImagingError(f"not a readable DICOM file: {exc}") from exc
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        raise ImagingError("no Transfer Syntax UID in the file meta header")
    return ds


def _pixel_element(f: BinaryIO, syntax: UID) -> PixelElement:
    """Parse the pixel element header at the current position (where ``stop_before_pixels``
    left the file) and return where its value starts."""
    order = "<" if syntax.is_little_endian else ">"
    head = f.read(8)
    if len(head) < 8:
        raise ImagingError("no pixel data")
    group, element = struct.unpack(order + "HH", head[:4])
    keyword = _PIXEL_TAGS.get(group << 16 | element)
    if keyword is None:
        raise ImagingError("no pixel data")
    vr: str | None = None
    if syntax.is_implicit_VR:
        (length,) = struct.unpack(order + "L", head[4:])
    else:
        vr_bytes = head[4:6]
        vr = vr_bytes.decode("ascii", "replace")
        if vr_bytes in _LONG_LENGTH_VRS:
            rest = f.read(4)
            if len(rest) < 4:
                raise ImagingError("truncated pixel data element")
            (length,) = struct.unpack(order + "L", rest)
        else:
            (length,) = struct.unpack(order + "H", head[6:])
    return PixelElement(keyword, vr, f.tell(), length)


def _whole(ds: Dataset, keyword: str, default: int) -> int:
    try:
        return int(ds.get(keyword) or default)
    except (TypeError, ValueError) as exc:
        raise ImagingError(f"bad {keyword}: {exc}") from exc
