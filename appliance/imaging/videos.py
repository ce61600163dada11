"""Stored videos made playable in a browser, once each, in the background.

A video is remuxed into MP4 as it is when browsers can play its codec (H.264; HEVC for the
browsers that decode it), and otherwise (MPEG-2, odd pixel formats, or an H.264 the browser
cannot play) transcoded to H.264.  The MP4 is kept in ``cache/videos/`` under a size cap,
least recently used dropped first: a Range request reads it from there.  Making one is a
background job: a remux is quick, a transcode on a Raspberry-Pi-class box is not, so
transcodes run one at a time (``video_transcodes``), each bounded by ``video_timeout``, and
never in a web request's thread.
"""

from __future__ import annotations

import collections
import logging
import queue
import shutil
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.imaging.cache import DiskCache
from appliance.imaging.ffmpeg import Ffmpeg, Probe
from appliance.imaging.source import ImagingError
from appliance.imaging.videostream import VideoStream, locate

LOG = logging.getLogger("lightbox.imaging.videos")
MB = 1024 * 1024
READY, PREPARING, FAILED, UNAVAILABLE, BUSY = "ready", "preparing", "failed", "unavailable", "busy"
COPY_WORKERS = 2  # remuxing is mostly reading and writing
MAX_WAITING = 16  # jobs queued or running; past this a request is told to come back later
RETRY_FAILED_AFTER = 600.0  # seconds before a video that failed is tried again
MAX_PLANS = 512  # probes remembered
PROBE_SLOTS = 2  # ffprobe runs and first frames made at once, in web requests


@dataclass(frozen=True)
class VideoOptions:
    ffmpeg: str = "/usr/bin/ffmpeg"
    cache_mb: int = 1024
    transcodes: int = 1
    timeout: float = 1800.0
    poster_side: int = 160
    reserve_mb: int = 200  # free disk the archive keeps for receiving (min_free_mb)

    @classmethod
    def from_settings(cls, settings: Any) -> VideoOptions:
        return cls(settings.video_ffmpeg, settings.video_cache_mb, settings.video_transcodes,
                   float(settings.video_timeout), settings.thumbnail_size, settings.min_free_mb)  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """Where a video stands: READY (``path`` is the MP4), PREPARING, BUSY (too many waiting),
    FAILED or UNAVAILABLE (``reason`` says why, in words for people)."""

    state: str
    path: Path | None = None
    reason: str = ""
    transcoded: bool = False
    codec: str = ""  # of the MP4's video: h264 or hevc


@dataclass(frozen=True)
class _Plan:
    stream: VideoStream
    probe: Probe
    transcode: bool
    sop_uid: str  # the cache entry's group (DiskCache.purge)

    def key(self) -> str:  # the stored file's name is its content hash: the same bytes, the same MP4
        return f"{self.stream.path.name}:{'h264' if self.transcode else 'copy'}:1"


class VideoLibrary:
    def __init__(self, folder: Path, options: VideoOptions = VideoOptions()) -> None:
        self.options = options
        self.ffmpeg = Ffmpeg(Path(options.ffmpeg))
        self.cache = DiskCache(folder, options.cache_mb * MB)
        self.cache.clear_scratch()
        self.cache.drop_ungrouped()
        weakref.finalize(self, self.ffmpeg.terminate)  # at exit too: a transcode may have an hour left
        self._lock = threading.Lock()
        self._plans: collections.OrderedDict[tuple[str, bool], _Plan] = collections.OrderedDict()
        self._waiting: set[str] = set()
        self._failed: dict[str, tuple[str, float]] = {}
        self._probe_slots = threading.BoundedSemaphore(PROBE_SLOTS)
        self._queues = {False: self._workers("video-copy", COPY_WORKERS),
                        True: self._workers("video-transcode", options.transcodes)}  # fmt: skip

    @property
    def available(self) -> bool:
        return self.ffmpeg.available

    def unavailable_reason(self) -> str:
        return f"Video playback needs ffmpeg on the server (Debian package ffmpeg): {self.options.ffmpeg} is missing."

    def prepare(self, stored: Path, sop_uid: str, h264: bool = False) -> Prepared:
        """The MP4 of a stored video (of instance ``sop_uid``), or its state; starts making it
        when nobody has.  ``h264`` asks for H.264 whatever the stored codec (for browsers
        without HEVC)."""
        if not self.available:
            return Prepared(UNAVAILABLE, reason=self.unavailable_reason())
        try:
            plan = self._plan(stored, sop_uid, h264)
        except ImagingError as exc:
            return Prepared(FAILED, reason=_plain(exc))
        key = plan.key()
        codec = "h264" if plan.transcode else plan.probe.video_codec
        path = self.cache.lookup(key, ".mp4", sop_uid)
        if path is not None:
            return Prepared(READY, path, transcoded=plan.transcode, codec=codec)
        if plan.transcode and self.options.transcodes < 1:
            return Prepared(
                FAILED, reason="it would need transcoding, which is off on this server (video_transcodes = 0)"
            )
        with self._lock:
            if key in self._waiting:
                return Prepared(PREPARING, transcoded=plan.transcode, codec=codec)
            failed = self._failed.get(key)
            if failed and time.monotonic() - failed[1] < RETRY_FAILED_AFTER:
                return Prepared(FAILED, reason=failed[0])
            if len(self._waiting) >= MAX_WAITING:
                return Prepared(BUSY, reason="The server is preparing other videos; try again in a minute.")
            self._waiting.add(key)
        self._queues[plan.transcode].put(plan)
        return Prepared(PREPARING, transcoded=plan.transcode, codec=codec)

    def poster(self, stored: Path, sop_uid: str) -> bytes:
        """The first frame as a small JPEG (cached beside the MP4s)."""
        side = self.options.poster_side

        def make() -> bytes:
            with self._probe_slots:
                return self.ffmpeg.poster(locate(stored), side)

        return self.cache.get_or_make(f"{stored.name}:poster:{side}", ".jpg", make, sop_uid)

    # ------------------------------------------------------------------ making

    def _plan(self, stored: Path, sop_uid: str, h264: bool) -> _Plan:
        """Copy or transcode: decided by probing the stream once (ffprobe takes ~0.1 s)."""
        wanted = (stored.name, h264)
        with self._lock:
            plan = self._plans.get(wanted)
            if plan is not None:
                self._plans.move_to_end(wanted)
                return plan
        stream = locate(stored)
        with self._probe_slots:
            probe = self.ffmpeg.probe(stream)
        copyable = probe.copyable(stream.raw) and not (h264 and probe.video_codec != "h264")
        plan = _Plan(stream, probe, transcode=not copyable, sop_uid=sop_uid)
        with self._lock:
            self._plans[wanted] = plan
            while len(self._plans) > MAX_PLANS:
                self._plans.popitem(last=False)
        return plan

    def _workers(self, name: str, count: int) -> queue.Queue[_Plan]:
        jobs: queue.Queue[_Plan] = queue.Queue()
        for n in range(count):  # daemon threads: a transcode never holds up a shutdown
            threading.Thread(target=self._work, args=(jobs,), name=f"{name}-{n}", daemon=True).start()
        return jobs

    def _work(self, jobs: queue.Queue[_Plan]) -> None:
        while True:
            plan = jobs.get()
            key = plan.key()
            try:
                self._make(plan, key)
            except Exception as exc:  # a failed video must not end the worker
                LOG.warning("video_failed video=%s transcode=%s reason=%s",
                            plan.stream.path.stem[:12], plan.transcode, exc)  # fmt: skip
                now = time.monotonic()
                with self._lock:
                    self._failed = {k: v for k, v in self._failed.items() if now - v[1] < RETRY_FAILED_AFTER}
                    self._failed[key] = (_plain(exc), now)
            finally:
                with self._lock:
                    self._waiting.discard(key)

    def _make(self, plan: _Plan, key: str) -> None:
        path = self.cache.path(key, ".mp4", plan.sop_uid)
        temp = self.cache.scratch(path)
        budget = shutil.disk_usage(self.cache.folder).free - self.options.reserve_mb * MB
        if budget <= plan.stream.size // 4:
            raise ImagingError("not enough free disk to prepare the video")
        started = time.monotonic()
        try:
            self.ffmpeg.to_mp4(plan.stream, plan.probe, temp, transcode=plan.transcode,
                               timeout=self.options.timeout, max_bytes=budget)  # fmt: skip
            self.cache.adopt(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        LOG.info("video_ready video=%s codec=%s transcoded=%s seconds=%.1f bytes=%d", plan.stream.path.stem[:12],
                 plan.probe.video_codec, plan.transcode, time.monotonic() - started, path.stat().st_size)  # fmt: skip


def _plain(exc: Exception) -> str:
    """Why a video cannot be played, for people (an unexpected error's details go to the log)."""
    return str(exc) if isinstance(exc, ImagingError) else "the server could not prepare it"
