"""Where a stored video's bitstream lies in its file, and what the header says of its timing.

PS3.5 8.2.5-8.2.11: under the MPEG-2, H.264 and HEVC transfer syntaxes the Pixel Data holds
one whole bitstream, not frames: after an empty Basic Offset Table, one fragment (MPEG-2 and
the plain H.264 syntaxes) or several to be concatenated (the "fragmentable" H.264 syntaxes,
HEVC).  The stream is a container (MPEG-TS or MP4 for H.264 and HEVC; for MPEG-2 also a
program or elementary stream), and in practice sometimes a bare H.264/HEVC elementary stream.
Nothing here reads the stream itself: only the item headers, so that ffmpeg can read the
fragments straight from the stored file.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from appliance.imaging.source import ImagingError, stored_header

MPEG2_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.100.1",
                            "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.101.1"})  # fmt: skip
HEVC_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108"})
RAW_FORMATS = frozenset({"h264", "hevc", "mpegvideo"})  # ffmpeg demuxers without timestamps
MAX_FRAGMENTS = 1 << 20  # 4 GB fragments: more than anyone stores
SNIFF_BYTES = 512
_ITEM, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"styp")


@dataclass(frozen=True)
class VideoFacts:
    """A video's size and timing as its header declares them (for the study page)."""

    frames: int | None
    frame_rate: float | None  # frames per second
    rows: int | None
    columns: int | None

    @property
    def duration(self) -> float | None:
        """Seconds, when both the frame count and the rate are known."""
        return self.frames / self.frame_rate if self.frames and self.frame_rate else None


@dataclass(frozen=True)
class VideoStream:
    path: Path
    syntax: str
    fragments: tuple[tuple[int, int], ...]  # (offset in the file, length), in order
    container: str  # the ffmpeg demuxer that reads it
    facts: VideoFacts

    @property
    def size(self) -> int:
        return sum(length for _, length in self.fragments)

    @property
    def raw(self) -> bool:
        """A bare elementary stream: no timestamps of its own, only the header's frame rate."""
        return self.container in RAW_FORMATS


def locate(path: Path) -> VideoStream:
    """The stored video's fragments and container; ImagingError if it holds no video stream."""
    ds, syntax, pixels = stored_header(path)
    if not syntax.is_encapsulated or pixels.length != 0xFFFFFFFF:
        raise ImagingError("the pixel data is not an encapsulated video stream")
    endian = "<" if syntax.is_little_endian else ">"
    with open(path, "rb") as f:
        f.seek(pixels.value_offset)
        fragments = _fragments(f, endian)
        if not fragments:
            raise ImagingError("the video has no data")
        f.seek(fragments[0][0])
        head = f.read(min(SNIFF_BYTES, fragments[0][1]))
    return VideoStream(Path(path), str(syntax), tuple(fragments), _container(head, str(syntax)), facts_of(ds))


def _fragments(f: BinaryIO, endian: str) -> list[tuple[int, int]]:
    """The (offset, length) of each fragment after the Basic Offset Table (whatever it holds)."""
    found: list[tuple[int, int]] = []
    first = True
    while len(found) < MAX_FRAGMENTS:
        head = f.read(8)
        if len(head) < 8:
            raise ImagingError("the video's pixel data is truncated")
        group, element, length = struct.unpack(endian + "HHL", head)
        tag = group << 16 | element
        if tag == _SEQUENCE_END:
            return found
        if tag != _ITEM or length == 0xFFFFFFFF:
            raise ImagingError("the video's pixel data is not a sequence of fragments")
        if not first and length:
            found.append((f.tell(), length))
        first = False
        f.seek(length, 1)
    raise ImagingError(f"the video has more than {MAX_FRAGMENTS} fragments")


def _container(head: bytes, syntax: str) -> str:
    """The ffmpeg demuxer for the stream that starts with ``head``."""
    if head[:1] == b"\x47" and head[188:189] in (b"", b"\x47"):
        return "mpegts"
    if head[4:5] == b"\x47" and head[196:197] in (b"", b"\x47"):  # M2TS: 192-byte packets
        return "mpegts"
    if head[4:8] in _MP4_BOXES:
        return "mov"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg"  # MPEG-2 program stream
    return _elementary(head, syntax)


def _elementary(head: bytes, syntax: str) -> str:
    """A bare stream: the syntax says which, unless its first start code says otherwise (a
    stream labelled MPEG-2 but holding H.264 is not rare)."""
    start = head.find(b"\x00\x00\x01")
    if start >= 0 and start + 3 < len(head):
        code = head[start + 3]
        if code >= 0x80:  # MPEG-2 start codes; H.264 and HEVC NAL headers have a zero top bit
            return "mpegvideo"
        if code in (0x40, 0x42, 0x46):  # HEVC VPS, SPS, access unit delimiter
            return "hevc"
        if code & 0x1F in (7, 9):  # H.264 SPS, access unit delimiter
            return "h264"
    if syntax in MPEG2_SYNTAXES:
        return "mpegvideo"
    return "hevc" if syntax in HEVC_SYNTAXES else "h264"


@functools.lru_cache(maxsize=1024)
def facts(path: Path) -> VideoFacts:
    """The header's facts of a stored video (stored files never change: their names are hashes)."""
    return facts_of(stored_header(path)[0])


def facts_of(ds: Dataset) -> VideoFacts:
    return VideoFacts(_positive_int(ds.get("NumberOfFrames")), frame_rate(ds),
                      _positive_int(ds.get("Rows")), _positive_int(ds.get("Columns")))  # fmt: skip


def frame_rate(ds: Dataset) -> float | None:
    """Frames per second from Frame Time (ms), else the Frame Time Vector's mean increment,
    Cine Rate or Recommended Display Frame Rate (PS3.3 C.7.6.5)."""
    candidates: list[Any] = []
    frame_time = _positive_float(ds.get("FrameTime"))
    if frame_time:
        candidates.append(1000.0 / frame_time)
    increments = ds.get("FrameTimeVector")  # the first is 0: the increments between frames follow
    given = list(increments[1:]) if isinstance(increments, MultiValue) else []
    vector = [v for v in (_positive_float(v) for v in given) if v]
    if vector and len(vector) == len(given):
        candidates.append(1000.0 * len(vector) / sum(vector))
    candidates += [ds.get("CineRate"), ds.get("RecommendedDisplayFrameRate")]
    for value in candidates:
        rate = _positive_float(value)
        if rate and 0.01 <= rate <= 1000:
            return rate
    return None


def _positive_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _positive_int(value: Any) -> int | None:
    number = _positive_float(value)
    return int(number) if number else None
