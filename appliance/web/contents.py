"""What the study page says of each series and instance: a line for people ("3 images",
"Video · 50 frames, 2.0 s", "PDF document") and, for videos and documents, the facts that
are in their headers rather than in the index (duration, document title)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from appliance.archive import Archive, kinds
from appliance.documents import encapsulated
from appliance.imaging import videostream
from appliance.imaging.source import ImagingError
from appliance.imaging.videos import VideoLibrary

NOUNS = {  # kind -> (one, many)
    kinds.IMAGE: ("image", "images"),
    kinds.VIDEO: ("video", "videos"),
    kinds.PDF: ("PDF document", "PDF documents"),
    kinds.DOCUMENT: ("document", "documents"),
    kinds.REPORT: ("structured report", "structured reports"),
    kinds.OTHER: ("object without pictures", "objects without pictures"),
}


def describe(detail: dict[str, Any], archive: Archive, videos: VideoLibrary) -> None:
    """Add to each series of a study's JSON its ``summary`` and ``front`` (the instance its
    thumbnail shows and opens: an image if it has any), and ``video`` or ``document`` facts to
    the instances of those kinds."""
    for series in detail["series"]:
        members = series["instances"]
        front = next((i for i in members if i["kind"] == kinds.IMAGE), members[0] if members else None)
        series["front"] = {"kind": front["kind"], "sop_uid": front["sop_uid"]} if front else {"kind": kinds.OTHER}
        for instance in members:
            if instance["kind"] == kinds.VIDEO:
                video = _video(archive, instance["sop_uid"])
                video["length"] = video_length(video)
                video["playback"] = "" if videos.available else videos.unavailable_reason()
                instance["video"] = video
            elif instance["kind"] in (kinds.PDF, kinds.DOCUMENT):
                instance["document"] = _document(archive, instance["sop_uid"])
            elif instance["kind"] != kinds.IMAGE:
                instance["description"] = kinds.sop_class_name(instance["sop_class_uid"])
        series["summary"] = summary(series)


def summary(series: dict[str, Any]) -> str:
    instances = series["instances"]
    counts: dict[str, int] = {}
    for i in instances:
        counts[i["kind"]] = counts.get(i["kind"], 0) + 1
    if len(counts) > 1:
        return f"{count(len(instances), 'instance', 'instances')}: " + ", ".join(
            count(n, *NOUNS[kind]) for kind, n in counts.items()
        )
    kind = series["kind"]
    if kind == kinds.VIDEO and len(instances) == 1:
        return "Video · " + video_length(instances[0].get("video") or {})
    if kind == kinds.IMAGE:
        frames = sum(i["number_of_frames"] or 1 for i in instances)
        images = count(len(instances), "image", "images")
        return images if frames == len(instances) else f"{images}, {count(frames, 'frame', 'frames')}"
    if kind in (kinds.PDF, kinds.DOCUMENT) and len(instances) == 1:
        return (instances[0].get("document") or {}).get("label") or "Document"
    if kind == kinds.REPORT and len(instances) == 1:
        return "Structured report"
    if kind == kinds.OTHER and len(instances) == 1:
        return instances[0]["description"]
    return count(len(instances), *NOUNS.get(kind, ("instance", "instances")))


def count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def video_length(video: dict[str, Any]) -> str:
    """ "50 frames, 2.0 s", or what of it is known."""
    parts = [count(video["frames"], "frame", "frames")] if video.get("frames") else []
    seconds = video.get("duration")
    if seconds:
        minutes, rest = divmod(round(seconds), 60)
        parts.append(f"{seconds:.1f} s" if seconds < 60 else f"{minutes} min {rest:02d} s")
    return ", ".join(parts) or "length unknown"


def _video(archive: Archive, sop_uid: str) -> dict[str, Any]:
    entry = archive.instance(sop_uid)
    try:
        facts = videostream.facts(archive.file_path(entry.file_key)) if entry else None
    except (ImagingError, OSError):
        facts = None
    if facts is None:
        return {"frames": entry.frames if entry else None, "duration": None}
    return {"frames": facts.frames, "duration": facts.duration, "frame_rate": facts.frame_rate}


def _document(archive: Archive, sop_uid: str) -> dict[str, Any]:
    entry = archive.instance(sop_uid)
    try:
        found = _located(archive.file_path(entry.file_key)) if entry else None
    except (encapsulated.DocumentError, OSError):
        found = None
    if found is None:
        return {"label": "Document", "title": "", "inline": False, "readable": False}
    return {"label": found.label, "title": found.title, "inline": found.inline, "readable": True}


@functools.lru_cache(maxsize=1024)
def _located(path: Path) -> encapsulated.EncapsulatedDocument:
    return encapsulated.locate(path)  # stored files never change: their names are their hashes
