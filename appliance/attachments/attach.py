"""The one entry point of every door (the study page, the JSON API, ``lightbox attach``): a
file becomes an instance in a new series of the study, stored through ingest, or is refused
with nothing left behind (every intermediate file is in a folder of the spool that goes)."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from appliance.archive import Archive, Origin
from appliance.attachments import document, kinds, photo, video
from appliance.imaging.ffmpeg import Ffmpeg
from appliance.made.storing import store

LOG = logging.getLogger("lightbox.attachments")
# One conversion at a time in this process: decoding a photo or re-encoding a video is where
# the memory goes, and two at once would double it.  A file that needs no conversion (a PDF, a
# baseline JPEG, an H.264 MP4) does not wait for one; one that does waits at most
# CONVERT_WAIT_S, then is refused (503): a waiting upload holds one of the web server's threads.
CONVERT_WAIT_S = 30.0
_CONVERTING = threading.Lock()


class Refused(ValueError):
    """A file that is not attached: ``status`` is the HTTP one (415 a kind Lightbox does not
    take, 422 one that claims a kind but is not a good one, 503 another file being converted)."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Attached:
    sop_uid: str
    series_uid: str
    kind: str  # kinds.PDF, JPEG, IMAGE, VIDEO
    title: str  # the series description
    how: str  # "kept" (the bytes as uploaded), "decoded", "remuxed", "re-encoded"


def attach(archive: Archive, study_uid: str, path: Path, filename: str, origin: Origin, ffmpeg: Ffmpeg,
           max_bytes: int) -> Attached:  # fmt: skip
    """Attach the file at ``path`` (left where it is) to ``study_uid``; ``filename`` is the name
    it had (a title when it has none).  LookupError for an unknown study, Refused for a bad
    file, NotStored when ingest failed."""
    try:
        kind = kinds.sniff(path, filename)
    except kinds.Unsupported as exc:
        raise Refused(str(exc), 415) from None
    with tempfile.TemporaryDirectory(prefix="attach-", dir=archive.storage.spool) as work:
        try:
            if kind == kinds.PDF:
                ds, payload = document.make(archive, study_uid, path, filename)
                syntax, how = ExplicitVRLittleEndian, "kept"
            elif kind == kinds.VIDEO:
                ds, payload, syntax, how = video.make(
                    archive, study_uid, path, filename, Path(work), ffmpeg, max_bytes, converting
                )
            else:
                ds, payload, syntax = photo.make(archive, study_uid, path, filename, Path(work), converting)
                how = "kept" if payload.path == path else "decoded"
        except (document.NotAPdf, photo.BadPicture, video.BadVideo) as exc:
            LOG.info("attach_refused kind=%s study=%s reason=%r", kind, study_uid[:64], str(exc))
            raise Refused(str(exc), 422) from None
        sop_uid = store(archive, ds, origin, syntax, payload)
    LOG.info("attached kind=%s how=%s study=%s sop=%s", kind, how, study_uid[:64], sop_uid)
    return Attached(sop_uid, str(ds.SeriesInstanceUID), kind, str(ds.SeriesDescription), how)


@contextlib.contextmanager
def converting(wait: float = CONVERT_WAIT_S) -> Iterator[None]:
    """Held while a file is converted (decoded or re-encoded); Refused (503) after ``wait``
    seconds of another conversion."""
    if not _CONVERTING.acquire(timeout=wait):
        raise Refused("another file is being converted (a video takes minutes): try again later", 503)
    try:
        yield
    finally:
        _CONVERTING.release()
