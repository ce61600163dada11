"""A video as a Video Photographic Image instance (PS3.3 A.32.6, modality XC).

PS3.5 8.2.7-8.2.11: the Pixel Data holds the whole bitstream in its container, MPEG-TS or MP4.
An MP4 whose H.264 stream fits a transfer syntax (High profile or below, 8-bit 4:2:0, at most
1920 x 1080, level 4.1 -> 1.2.840.10008.1.2.4.102, level 4.2 -> .104) is kept byte for byte; a
QuickTime file with such a stream is put into MP4 by ffmpeg without touching the stream
(``-c copy``).  Anything else (AVI, MKV, MPEG-2, HEVC, 4K) is re-encoded to H.264 High / level
4.1 by ffmpeg's libx264, scaled to fit 1280 x 720 and at most 30 frames a second: about real
time on one core (see README), with few threads and a short lookahead so its memory stays small.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID

from appliance.archive import Archive
from appliance.attachments import series
from appliance.imaging.ffmpeg import Ffmpeg, FfmpegError
from appliance.made.storing import PIXEL_DATA, Payload

VIDEO_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4.1"
H264_HP41, H264_HP42 = UID("1.2.840.10008.1.2.4.102"), UID("1.2.840.10008.1.2.4.104")
PROFILES = ("Constrained Baseline", "Main", "High")  # what a High profile decoder plays
MP4_BRANDS = ("isom", "iso2", "iso4", "iso5", "iso6", "mp41", "mp42", "avc1", "M4V ", "dash")
PROBE_TIMEOUT = 60.0
ENCODE_TIMEOUT = 4 * 3600.0  # a long AVI on a Pi-class box: about real time or slower
# libx264 with two sliced threads, a lookahead of 3 frames and no B-frames, decoding and scaling
# on one thread, at most 1280 x 720: ffmpeg stays near 100 MB (PSS, of which ~50 MB are its
# libraries), so the service with it stays under 200 MB; a 1080p output took ~150 MB.
ENCODE = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-profile:v", "high", "-level:v", "4.1",
          "-threads", "2", "-filter_threads", "1", "-x264-params", "sliced-threads=1:rc-lookahead=3:bframes=0",
          "-fpsmax", "30", "-vf", "scale=w='min(1280,iw)':h='min(720,ih)':force_original_aspect_ratio=decrease"
                                  ":force_divisible_by=2,format=yuv420p"]  # fmt: skip


class BadVideo(ValueError):
    """A video that cannot be attached (unreadable, no video track, ffmpeg missing or failed)."""


@dataclass(frozen=True)
class Facts:
    """The video track as ffprobe sees it, and the container."""

    codec: str
    profile: str
    level: int
    pix_fmt: str
    columns: int
    rows: int
    frames: int
    rate: Fraction
    mp4: bool  # an MP4 (not QuickTime or another ISO file)

    @property
    def syntax(self) -> UID | None:
        """The H.264 transfer syntax the stream fits as it is, or None."""
        if self.codec != "h264" or self.profile not in PROFILES or self.pix_fmt not in ("yuv420p", "yuvj420p"):
            return None
        if self.columns > 1920 or self.rows > 1080 or not 0 < self.level <= 42:
            return None
        return H264_HP41 if self.level <= 41 else H264_HP42


def make(
    archive: Archive,
    study_uid: str,
    path: Path,
    filename: str,
    spool: Path,
    ffmpeg: Ffmpeg,
    max_bytes: int,
    converting: Callable[[], AbstractContextManager[None]],
) -> tuple[Dataset, Payload, UID, str]:
    """The instance's attributes, its stream (as a file) and transfer syntax, and what was
    done ("kept", "remuxed", "re-encoded").  A new file in ``spool`` is the caller's to remove;
    remuxing and re-encoding happen inside ``converting()`` (one at a time)."""
    if not ffmpeg.available:
        raise BadVideo(
            f"attaching a video needs ffmpeg on the server (Debian package ffmpeg): {ffmpeg.binary} is missing"
        )
    facts = probe(ffmpeg, path)
    stream, done = path, "kept"
    if facts.syntax is None or not facts.mp4:
        stream = spool / (path.name + ".mp4")
        done = "remuxed" if facts.syntax is not None else "re-encoded"
        codec = ["-c:v", "copy"] if facts.syntax is not None else ENCODE
        timeout = PROBE_TIMEOUT * 10 if facts.syntax is not None else ENCODE_TIMEOUT
        try:
            with converting():
                ffmpeg.run([str(ffmpeg.binary), "-nostdin", "-v", "error", "-y", "-threads", "1", "-i", str(path),
                        "-map", "0:v:0", "-map", "0:a:0?", "-sn", "-dn", *codec, "-c:a", "aac", "-b:a", "128k",
                        "-movflags", "+faststart", "-fs", str(max_bytes), "-f", "mp4", str(stream)], timeout)  # fmt: skip
        except FfmpegError as exc:
            raise BadVideo(f"the video could not be converted: {exc}"[:300]) from None
        if stream.stat().st_size >= max_bytes:
            raise BadVideo(f"the converted video would be larger than {max_bytes >> 20} MB")
        facts = probe(ffmpeg, stream)
    syntax = facts.syntax
    if syntax is None:
        raise BadVideo(f"ffmpeg made a stream no H.264 transfer syntax takes ({facts.profile} {facts.level})")
    ds = series.new_instance(archive, study_uid, VIDEO_PHOTOGRAPHIC, "XC", series.title_of(filename, "Video"))
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = ""
    ds.AcquisitionContextSequence = []
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_PARTIAL_420", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.Rows, ds.Columns = facts.rows, facts.columns
    ds.NumberOfFrames, ds.FrameIncrementPointer = max(facts.frames, 1), 0x00181063
    ds.FrameTime = f"{1000 / float(facts.rate):.6g}" if facts.rate else "0"
    ds.CineRate = ds.RecommendedDisplayFrameRate = round(float(facts.rate)) if facts.rate else 0
    ds.LossyImageCompression, ds.LossyImageCompressionMethod = "01", "ISO_14496_10"
    return series.finish(ds), Payload(PIXEL_DATA, stream, encapsulated=True), syntax, done


def probe(ffmpeg: Ffmpeg, path: Path) -> Facts:
    try:
        out = ffmpeg.run([str(ffmpeg.probe_binary), "-v", "error", "-print_format", "json", "-show_streams",
                          "-show_format", str(path)], PROBE_TIMEOUT)  # fmt: skip
        found = json.loads(out)
    except (FfmpegError, ValueError) as exc:
        raise BadVideo(f"not a readable video: {exc}"[:300]) from None
    video = next((s for s in found.get("streams", []) if s.get("codec_type") == "video"), None)
    if video is None or video.get("disposition", {}).get("attached_pic"):
        raise BadVideo("the file holds no video track")
    container = found.get("format", {})
    brand = str(container.get("tags", {}).get("major_brand", ""))
    return Facts(
        str(video.get("codec_name", "")), str(video.get("profile", "")), _int(video.get("level")),
        str(video.get("pix_fmt", "")), _int(video.get("width")), _int(video.get("height")),
        _int(video.get("nb_frames")), _rate(video.get("avg_frame_rate")),
        "mp4" in str(container.get("format_name", "")) and brand.ljust(4)[:4] in MP4_BRANDS,
    )  # fmt: skip


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _rate(value: Any) -> Fraction:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return Fraction(0)
    return rate if 0 < rate < 1000 else Fraction(0)
