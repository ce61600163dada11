"""Stored videos in the browser (PS3.5 MPEG-2, H.264 and HEVC transfer syntaxes).

    GET /api/instances/<sop_uid>/video        JSON: state of its MP4 (ready, preparing, busy,
                                              failed, unavailable), reason, URL, frames, duration
    GET /api/instances/<sop_uid>/video.mp4    the MP4, with Range requests (206); 503 and
                                              Retry-After while it is being prepared (a copy,
                                              quick, is waited for: see COPY_WAIT_S)
        ?codec=h264 (H.264 whatever the stored codec: for browsers without HEVC)  ?download=1
    GET /api/instances/<sop_uid>/poster       the first frame as a small JPEG, or a video icon
                                              when no picture can be made

Asking for either of the first two starts preparing the MP4 (see imaging/videos.py).  Playing
is recorded in the audit trail as instances accessed, downloading as an export.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import bottle

from appliance.archive import Archive, InstanceEntry, audit, kinds
from appliance.imaging import videostream
from appliance.imaging.source import ImagingError
from appliance.imaging.videos import BUSY, PREPARING, READY, UNAVAILABLE, Prepared, VideoLibrary
from appliance.web import ranges
from appliance.web.auth import Guard, fail
from appliance.web.templates import STATIC

LOG = logging.getLogger("lightbox.web.video")
RETRY_AFTER_S = 2
# A <video> element (OHIF's, behind DICOMweb's rendered) does not retry a 503, and copying a stream
# into an MP4 takes well under a second: such a request waits for the copy, this long at most,
# holding one of the server's few threads; so at most COPY_WAITERS requests wait at once.
COPY_WAIT_S = 10.0
COPY_WAITERS = 2
STATUS = {PREPARING: 503, BUSY: 503, UNAVAILABLE: 503}  # and 422 for a video that failed
ICON = "icon-video.svg"


def install(app: bottle.Bottle, archive: Archive, guard: Guard, videos: VideoLibrary) -> None:
    def video_or_404(sop_uid: str) -> InstanceEntry:
        entry = archive.instance(sop_uid)
        if entry is None or entry.kind != kinds.VIDEO:
            raise fail(404, "no such video")
        return entry

    def prepared(entry: InstanceEntry) -> tuple[Prepared, bool]:
        h264 = bottle.request.query.get("codec") == "h264"
        return videos.prepare(archive.file_path(entry.file_key), entry.sop_uid, h264=h264), h264

    waiters = threading.BoundedSemaphore(COPY_WAITERS)

    def copied(entry: InstanceEntry, ready: Prepared) -> Prepared:
        """``ready``, or the state after waiting for a copy being made (not a transcode: too long)."""
        if ready.state != PREPARING or ready.transcoded or not waiters.acquire(blocking=False):
            return ready
        try:
            deadline = time.monotonic() + COPY_WAIT_S
            while ready.state == PREPARING and time.monotonic() < deadline:
                time.sleep(0.1)
                ready = prepared(entry)[0]
            return ready
        finally:
            waiters.release()

    def mp4_url(sop_uid: str, h264: bool) -> str:
        return f"/api/instances/{sop_uid}/video.mp4" + ("?codec=h264" if h264 else "")

    @app.get("/api/instances/<sop_uid>/video")
    @guard
    def status(sop_uid: str) -> dict[str, Any]:
        entry = video_or_404(sop_uid)
        ready, h264 = prepared(entry)
        facts = videostream.facts(archive.file_path(entry.file_key))
        return {
            "state": ready.state, "reason": ready.reason, "url": mp4_url(sop_uid, h264), "codec": ready.codec,
            "transcoded": ready.transcoded,
            "frames": facts.frames, "frame_rate": facts.frame_rate, "duration": facts.duration,
            "rows": facts.rows, "columns": facts.columns,
        }  # fmt: skip

    @app.get("/api/instances/<sop_uid>/video.mp4")
    @guard
    def mp4(sop_uid: str) -> bottle.HTTPResponse:
        entry = video_or_404(sop_uid)
        ready, h264 = prepared(entry)
        ready = copied(entry, ready)
        if ready.state != READY or ready.path is None:
            return _not_ready(ready.state, ready.reason)
        download = bottle.request.query.get("download") == "1"
        name = f"video-{entry.instance_number or 0}.mp4"
        headers = {
            "Content-Type": "video/mp4",
            "Content-Disposition": f'{"attachment" if download else "inline"}; filename="{name}"',
            "Cache-Control": "private, max-age=300",
        }
        etag = f'"{ready.path.stem[:32]}"'  # names the MP4's content: the stored file and the variant
        try:
            answer = ranges.window_response(ready.path, 0, ready.path.stat().st_size, headers, etag)
        except FileNotFoundError:  # dropped from the cache since: the next request makes it again
            return _not_ready(PREPARING, "")
        if answer.status_code in (200, 206) and ranges.first_piece():
            event, what = (audit.EXPORT, "downloaded as MP4") if download else (audit.INSTANCES_ACCESSED, "played")
            guard.audit(event, study_uid=archive.study_of_series(entry.series_uid) or "",
                        detail=f"video (instance {entry.instance_number}) {what}")  # fmt: skip
        return answer

    @app.get("/api/instances/<sop_uid>/poster")
    @guard
    def poster(sop_uid: str) -> bottle.HTTPResponse:
        entry = video_or_404(sop_uid)
        try:
            picture = videos.poster(archive.file_path(entry.file_key), entry.sop_uid)
        except (ImagingError, OSError) as exc:
            LOG.warning("video_poster_failed reason=%s", exc)
            return _icon(ICON)
        return bottle.HTTPResponse(
            picture, 200, {"Content-Type": "image/jpeg", "Cache-Control": "private, max-age=300"}
        )


def _not_ready(state: str, reason: str) -> bottle.HTTPResponse:
    """No MP4 yet: come back (503 with Retry-After), or it cannot be made (422, or 503 without ffmpeg)."""
    retry = {"Retry-After": str(RETRY_AFTER_S)} if state in (PREPARING, BUSY) else {}
    body = {"error": reason or "the video is being prepared; try again in a moment", "state": state}
    return bottle.HTTPResponse(json.dumps(body), STATUS.get(state, 422), {"Content-Type": "application/json", **retry})


def _icon(name: str) -> bottle.HTTPResponse:
    """A picture from webui/static for an instance that has none of its own (never a broken image)."""
    answer = bottle.static_file(name, root=str(STATIC), mimetype="image/svg+xml")
    answer.set_header("Cache-Control", "private, max-age=60")
    return answer
