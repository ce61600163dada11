"""ffmpeg and ffprobe on a stored video: probe it, take its first frame, make a browser MP4.

ffmpeg reads the bitstream straight out of the stored DICOM file (its ``subfile`` protocol,
and ``concatf`` for a stream in several fragments): nothing is copied out first.  Every run
has a timeout, a lower CPU priority than the archive, and no shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance.imaging.source import ImagingError
from appliance.imaging.videostream import VideoStream

NICENESS = 10  # transcoding must not slow down receiving or the web UI
PROBE_TIMEOUT = 60.0
BROWSER_VIDEO = {"h264": ("yuv420p", "yuvj420p"), "hevc": ("yuv420p", "yuv420p10le")}
BROWSER_AUDIO = ("aac", "mp3")


class FfmpegError(ImagingError):
    """ffmpeg failed, timed out, or is not installed."""


@dataclass(frozen=True)
class Probe:
    """What ffprobe found in a stream: its first video and audio tracks."""

    video_codec: str
    pix_fmt: str
    reorders: bool  # frames are stored out of display order (B-frames)
    audio_codec: str | None

    def copyable(self, raw: bool) -> bool:
        """Can the video go into MP4 as it is?  A bare elementary stream has no timestamps, so
        with B-frames ffmpeg could only guess their presentation times: those are re-encoded."""
        return self.pix_fmt in BROWSER_VIDEO.get(self.video_codec, ()) and not (raw and self.reorders)


class Ffmpeg:
    def __init__(self, binary: Path, threads: int = 2) -> None:
        self.binary = Path(binary)
        self.probe_binary = self.binary.with_name("ffprobe")
        self.threads = threads
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return all(os.access(p, os.X_OK) for p in (self.binary, self.probe_binary))

    def probe(self, stream: VideoStream) -> Probe:
        with _input(stream) as source:
            out = self.run([str(self.probe_binary), "-v", "error", "-print_format", "json", "-show_streams", *source],
                            PROBE_TIMEOUT)  # fmt: skip
        try:
            streams = json.loads(out).get("streams", [])
        except ValueError as exc:
            raise FfmpegError(f"ffprobe answered no JSON: {exc}") from None
        video = next((s for s in streams if s.get("codec_type") == "video"), None)
        if video is None:
            raise FfmpegError("no video track in the stream")
        audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
        return Probe(str(video.get("codec_name", "")), str(video.get("pix_fmt", "")),
                     int(video.get("has_b_frames") or 0) > 0, audio and str(audio.get("codec_name", "")))  # fmt: skip

    def poster(self, stream: VideoStream, side: int, timeout: float = PROBE_TIMEOUT) -> bytes:
        """The first frame as a JPEG fitted into side x side."""
        fit = f"scale=w={side}:h={side}:force_original_aspect_ratio=decrease"
        with _input(stream) as source:
            data = self.run([str(self.binary), "-nostdin", "-v", "error", *source, "-map", "0:v:0", "-frames:v", "1",
                              "-vf", fit, "-f", "image2", "-c:v", "mjpeg", "-q:v", "4", "pipe:1"], timeout)  # fmt: skip
        if not data.startswith(b"\xff\xd8"):
            raise FfmpegError("ffmpeg made no picture of the first frame")
        return data

    def to_mp4(
        self, stream: VideoStream, probe: Probe, out: Path, *, transcode: bool, timeout: float, max_bytes: int
    ) -> None:
        """Write the stream as an MP4 that browsers play, to ``out``: the video copied as it is
        (``transcode`` False) or re-encoded to H.264; audio copied when browsers play it."""
        decoder: list[str] = []
        if transcode:
            # One decoding thread, sliced encoding threads and a short lookahead: 1080p takes 190 MB
            # instead of 270 MB (measured), as fast on two cores and no larger.
            decoder = ["-threads", "1"]
            video = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
                     "-x264-params", "sliced-threads=1:rc-lookahead=5"]  # fmt: skip
        else:
            video = ["-c:v", "copy"] + (["-tag:v", "hvc1"] if probe.video_codec == "hevc" else [])  # Safari wants hvc1
            if stream.raw:  # no B-frames (see Probe.copyable): presentation order is decoding order
                video += ["-bsf:v", "setts=pts=DTS"]
        audio = ["-c:a", "copy"] if probe.audio_codec in BROWSER_AUDIO else ["-c:a", "aac", "-b:a", "128k"]
        with _input(stream) as source:
            self.run([str(self.binary), "-nostdin", "-v", "error", "-y", *decoder, *source,
                       "-map", "0:v:0", "-map", "0:a:0?", "-sn", "-dn", *video, *audio, "-threads", str(self.threads),
                       "-movflags", "+faststart", "-fs", str(max_bytes), "-f", "mp4", str(out)], timeout)  # fmt: skip
        if out.stat().st_size >= max_bytes:
            raise FfmpegError(f"the MP4 would take more than {max_bytes} bytes of disk")

    def terminate(self) -> None:
        """Stop every ffmpeg still running (at shutdown: a transcode may have an hour left)."""
        with self._lock:
            for process in self._running:
                process.kill()

    def run(self, args: list[str], timeout: float) -> bytes:
        """Run an ffmpeg or ffprobe command line (niced, bounded in time); its standard output."""
        if not self.available:
            raise FfmpegError(f"{self.binary} or {self.probe_binary} is not installed")
        name = Path(args[0]).name
        # stderr to a file: a broken stream can make ffmpeg complain for every frame of an hour
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
            with self._lock:
                self._running.add(process)
            try:
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, process.pid, NICENESS)
                out, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                raise FfmpegError(f"{name} took more than {timeout:.0f} s") from None
            finally:
                with self._lock:
                    self._running.discard(process)
            if process.returncode != 0:
                errors.seek(max(0, errors.seek(0, os.SEEK_END) - 2048))
                last = errors.read().decode("utf-8", "replace").strip().splitlines()[-1:]
                raise FfmpegError(f"{name} failed: {(last or [f'exit status {process.returncode}'])[0][:300]}")
        return out  # small: a probe's JSON or one JPEG


@contextlib.contextmanager
def _input(stream: VideoStream) -> Iterator[list[str]]:
    """ffmpeg's input options for the stream inside the stored file."""
    options = ["-f", stream.container]
    if stream.raw and stream.facts.frame_rate:
        options += ["-framerate", f"{stream.facts.frame_rate:.6g}"]  # else ffmpeg assumes 25
    parts = [f"subfile,,start,{offset},end,{offset + length},,:{stream.path}" for offset, length in stream.fragments]
    if len(parts) == 1:
        yield options + ["-i", parts[0]]
        return
    with tempfile.NamedTemporaryFile("w", prefix="lightbox-fragments-", suffix=".txt") as listing:
        listing.write("\n".join(parts) + "\n")  # too many for a command line: one per line
        listing.flush()
        yield options + ["-i", f"concatf:{listing.name}"]
