"""Each stored instance's DICOM JSON (PS3.18 F.2), and its Native DICOM Model XML, kept in a
size-capped disk cache.

Stored files never change (their names are their hashes), so an instance's JSON is made once:
~0.6-1.5 ms for a CT slice, which makes a 500-slice series' first metadata request slower than
Orthanc's.  So the JSON of what arrives is made ahead, from the change log (DESIGN rule 6), a
few seconds after it is stored: a viewer opening a study it has just received reads it from the
cache.  Only the latest ``AHEAD_WINDOW`` arrivals are made ahead; an import of a whole archive
does not churn the cache with entries it would evict.  While arrivals keep coming, the work
waits for a quiet moment (ingest needs the CPU more than a viewer that has not asked yet).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from pathlib import Path

import pydicom
from pydicom.uid import UID

from appliance.archive import STORED_KINDS, Archive
from appliance.imaging import ImagingError
from appliance.imaging.cache import DiskCache
from appliance.imaging.source import stored_header
from appliance.web.dicomweb import raw_header
from appliance.web.dicomweb.json import to_json
from appliance.web.dicomweb.xml import to_xml

LOG = logging.getLogger("lightbox.web.dicomweb")
PREFIX = "/dicom-web"
PIXEL_DATA = "7FE00010"
# Pixel Data, Float Pixel Data and Double Float Pixel Data: each served as frames (PS3.18 10.4.1.1.3).
PIXEL_TAGS = {"PixelData": PIXEL_DATA, "FloatPixelData": "7FE00008", "DoubleFloatPixelData": "7FE00009"}
FLOAT_VRS = {"FloatPixelData": "OF", "DoubleFloatPixelData": "OD"}
CACHE_MB = 64
VERSION = 1  # raised when the JSON changes, so that cached answers are made again
CURSOR = "metadata_ahead"
AHEAD_WINDOW = 10_000  # latest arrivals made ahead (~40 MB of CT JSON, within the cap)
BATCH = 500  # changes per look at the change log
QUIET = 2.0  # seconds without an arrival before the latest ones are made
OVERDUE = 30.0  # an arrival older than this is made even while others keep coming


def bulk_base(script_name: str, study: str, series: str, sop: str) -> str:
    """Where an instance's bulk data is, as its JSON names it: same-origin paths."""
    return f"{script_name.rstrip('/')}{PREFIX}/studies/{study}/series/{series}/instances/{sop}/bulkdata/"


class InstanceMetadata:
    def __init__(self, data_dir: Path) -> None:
        self.cache = DiskCache(Path(data_dir) / "cache" / "metadata", CACHE_MB * 1024 * 1024)

    def open(self) -> None:
        """Before the first request: leftovers of a stopped process go."""
        self.cache.clear_scratch()
        self.cache.drop_ungrouped()

    def json(self, path: Path, sop: str, base: str) -> bytes:
        return self.cache.get_or_make(self._key(path, base), ".json", lambda: instance_json(path, base), sop)

    def xml(self, path: Path, sop: str, base: str) -> bytes:
        """Made from the JSON, so that the two cannot disagree (~1.5 ms more a CT slice)."""
        return self.cache.get_or_make(
            self._key(path, base), ".xml", lambda: to_xml(json.loads(self.json(path, sop, base))), sop
        )

    def make_ahead(self, archive: Archive, now: float | None = None) -> int:
        """Follow the change log, making the JSON of each instance stored (served from the
        root, as the service is); how many were made or found made.  While instances keep
        arriving, ingest keeps the CPU (a STOW-RS of CT slices lost ~15 % to this): only
        arrivals older than ``OVERDUE`` are made until ``QUIET`` seconds pass without one."""
        now = time.time() if now is None else now
        last = archive.last_change()
        newest = archive.changes_after(last - 1, 1)
        due = now if not newest or now - newest[0].at >= QUIET else now - OVERDUE
        cursor, made = max(archive.cursor(CURSOR), last - AHEAD_WINDOW), 0
        while changes := list(itertools.takewhile(lambda c: c.at <= due, archive.changes_after(cursor, BATCH))):
            for change in changes:
                if change.kind in STORED_KINDS and self._make_one(archive, change.sop_uid):
                    made += 1
            cursor = changes[-1].seq
            archive.set_cursor(CURSOR, cursor)
        return made

    def _make_one(self, archive: Archive, sop: str) -> bool:
        entry = archive.instance(sop)
        study = None if entry is None else archive.study_of_series(entry.series_uid)
        if entry is None or study is None:  # removed since: its cache entries are purged, not made
            return False
        try:
            self.json(archive.file_path(entry.file_key), sop, bulk_base("", study, entry.series_uid, sop))
        except (OSError, ImagingError, ValueError) as exc:  # a request for it says so again
            LOG.warning("metadata_ahead_failed sop_instance_uid=%s reason=%s", sop, exc)
            return False
        return True

    @staticmethod
    def _key(path: Path, base: str) -> str:
        return f"{path}:{base}:{VERSION}"


def instance_json(path: Path, bulk_base: str) -> bytes:
    header = raw_header.read(path)  # most files; pydicom's reader for the others
    pixels: tuple[str, str | None] | None
    if header is not None:
        ds, syntax, pixels = header
    else:
        try:
            ds, syntax, element = stored_header(path)
            pixels = (element.keyword, element.vr)
        except ImagingError:  # no pixel data (a report, a document): read the whole header
            ds, pixels = pydicom.dcmread(path, stop_before_pixels=True, defer_size=1024), None
            syntax = UID(ds.file_meta.TransferSyntaxUID)
    body = to_json(ds, lambda tag_path: bulk_base + tag_path)
    if pixels is not None:
        keyword, stated = pixels
        vr = stated or FLOAT_VRS.get(keyword) or ("OB" if syntax.is_encapsulated else "OW")
        tag = PIXEL_TAGS[keyword]
        body[tag] = {"vr": vr, "BulkDataURI": bulk_base + tag}
    return json.dumps(body, separators=(",", ":")).encode()
