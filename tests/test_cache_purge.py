"""The thumbnail, DICOMweb metadata and video caches hold patient data: once an instance is
deleted, the change log follower removes every cache file made from it, and nothing of
another study.  The same follower makes each arrival's DICOM JSON before a viewer asks."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
import requests
from test_video_http import ready, send

from support.dicomgen import make_study
from support.mediagen import H264_HP41, make_stream, video_dicom
from support.web import ADMIN, ADMIN_PASSWORD, base_url

CACHES = ("thumbnails", "metadata", "videos")


def prefix(sop_uid: str) -> str:
    """Cache file names begin with a hash of the instance they were made from."""
    return hashlib.sha256(sop_uid.encode()).hexdigest()[:16] + "-"


def cached(data: Path, sop_uids: set[str]) -> list[Path]:
    prefixes = {prefix(uid) for uid in sop_uids}
    return [p for name in CACHES if (data / "cache" / name).is_dir()
            for p in (data / "cache" / name).iterdir() if p.name[:17] in prefixes]  # fmt: skip


@pytest.mark.slow  # waits for the follower's round (every 2 s)
def test_deleting_a_study_purges_its_cache_files(server, admin, tmp_path):
    studies = {}
    for name in ("gone", "kept"):
        files = make_study(tmp_path / name, 3, patient_id=f"PURGE-{name}", patient_name=f"Purge^{name}")
        assert server.storescu(*files).returncode == 0
        ds = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        studies[name] = (ds[0].StudyInstanceUID, ds[0].SeriesInstanceUID, {d.SOPInstanceUID for d in ds})
    session = requests.Session()
    session.auth, session.trust_env = (ADMIN, ADMIN_PASSWORD), False
    for study, series, sops in studies.values():  # the caches filled as a viewer fills them
        web = f"{base_url(server)}/dicom-web/studies/{study}/series/{series}"
        assert session.get(web + "/metadata", timeout=30).status_code == 200
        for sop in sops:
            assert session.get(f"{web}/instances/{sop}/thumbnail", timeout=30).status_code == 200
        assert admin.get(f"/api/series/{series}/thumbnail").status_code == 200
    # A video in the deleted study: its MP4 and its poster are cached too.
    stream = make_stream(tmp_path / "clip.ts", "h264", "ts", frames=10)
    video = video_dicom(stream, tmp_path / "video.dcm", H264_HP41, frames=10, study_uid=studies["gone"][0],
                        patient_id="PURGE-gone", patient_name="Purge^gone")  # fmt: skip
    video_uid = send(server, video)
    ready(admin, video_uid)
    assert admin.get(f"/api/instances/{video_uid}/poster").status_code == 200
    assert wait_for(lambda: len(cached(server.data, {video_uid})) == 3)  # its MP4, poster and metadata (made ahead)
    gone, kept = studies["gone"][2] | {video_uid}, studies["kept"][2]
    before = cached(server.data, gone)
    assert len(before) == 3 + 3 + 3 and len(cached(server.data, kept)) == 6  # metadata and a thumbnail each
    metadata = server.data / "cache" / "metadata"
    assert any(studies["gone"][0].encode() in p.read_bytes() for p in metadata.iterdir())  # patient data in there

    assert admin.api_post(f"/api/studies/{studies['gone'][0]}/delete", confirm="PURGE-gone").status_code == 200
    assert wait_for(lambda: not cached(server.data, gone))
    assert cached(server.data, gone) == []
    assert not any(studies["gone"][0].encode() in p.read_bytes() for p in metadata.iterdir())
    assert len(cached(server.data, kept)) == 6  # another study's entries stay
    assert "cache_purged entries=9" in server.log()


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> bool:
    """Whether ``condition`` held within ``seconds`` (the follower looks every 2 s)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


@pytest.mark.slow  # waits for the follower's round (every 2 s)
def test_metadata_is_made_before_the_first_request(server, tmp_path):
    """A viewer opening a series that has just arrived reads its DICOM JSON from the cache, and
    that JSON is the one a request makes."""
    files = make_study(tmp_path / "ahead", 4, patient_id="AHEAD-1", patient_name="Ahead^Made")
    assert server.storescu(*files).returncode == 0
    ds = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    sops = [d.SOPInstanceUID for d in ds]
    metadata = server.data / "cache" / "metadata"
    assert wait_for(lambda: all(len(cached(server.data, {sop})) == 1 for sop in sops)), "not made ahead"
    made = {p.name: p.read_bytes() for p in cached(server.data, set(sops))}
    session = requests.Session()
    session.auth, session.trust_env = (ADMIN, ADMIN_PASSWORD), False
    url = f"{base_url(server)}/dicom-web/studies/{ds[0].StudyInstanceUID}/series/{ds[0].SeriesInstanceUID}/metadata"
    first = session.get(url, timeout=30)
    assert first.status_code == 200 and len(first.json()) == 4
    assert {p.name: p.read_bytes() for p in cached(server.data, set(sops))} == made  # read, not made again
    # The answer is the entries made ahead, as a JSON array.
    assert all(entry in first.content for entry in made.values())
    assert len(first.content) == sum(map(len, made.values())) + len("[,,,]")
    for entry in metadata.iterdir():  # and a request with nothing cached makes the same JSON
        entry.unlink()
    again = session.get(url, timeout=30)
    assert again.status_code == 200 and again.content == first.content
    assert "metadata_made_ahead instances=" in server.log()
