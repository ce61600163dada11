"""Purging the web's caches of instances that are gone (deleted, replaced, superseded by an
edit): thumbnails, DICOMweb metadata, videos' MP4s and posters hold patient data, which must
not outlive the instance on disk until the cache happens to evict it.

Driven by the change log (DESIGN rule 6) from a cursor kept in the index, so a deletion made
by another process (`lightbox` commands) or while the service was down is purged too.
"""

from __future__ import annotations

import logging
from pathlib import Path

from appliance.archive import REMOVED_KINDS, Archive
from appliance.imaging.cache import DiskCache

LOG = logging.getLogger("lightbox.web.cachepurge")
CURSOR = "cache_purge"
BATCH = 500  # changes per pass over the cache folders
FOLDERS = ("thumbnails", "metadata", "videos")  # under <data>/cache: entries grouped by SOP Instance UID


def cache_folders(data_dir: Path) -> list[Path]:
    return [Path(data_dir) / "cache" / name for name in FOLDERS]


def purge_removed(archive: Archive) -> int:
    """Follow the change log to its end, dropping the cache entries of each removed instance;
    how many entries went.  The cursor moves after each batch is purged."""
    caches = [DiskCache(folder, 0) for folder in cache_folders(archive.data_dir)]  # purge only: no cap used
    cursor, removed = archive.cursor(CURSOR), 0
    while changes := archive.changes_after(cursor, BATCH):
        gone = {c.sop_uid for c in changes if c.kind in REMOVED_KINDS and c.sop_uid}
        removed += sum(cache.purge(gone) for cache in caches)
        cursor = changes[-1].seq
        archive.set_cursor(CURSOR, cursor)
    if removed:
        LOG.info("cache_purged entries=%d up_to_change=%d", removed, cursor)
    return removed
