"""The thumbnail, DICOMweb metadata and video caches hold patient data: once an instance is
deleted, the change log follower removes every cache file made from it, and nothing of
another study."""

from __future__ import annotations

import hashlib
import time
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
    gone, kept = studies["gone"][2] | {video_uid}, studies["kept"][2]
    before = cached(server.data, gone)
    assert len(before) == 3 + 3 + 2 and len(cached(server.data, kept)) == 6  # metadata and a thumbnail each
    metadata = server.data / "cache" / "metadata"
    assert any(studies["gone"][0].encode() in p.read_bytes() for p in metadata.iterdir())  # patient data in there

    assert admin.api_post(f"/api/studies/{studies['gone'][0]}/delete", confirm="PURGE-gone").status_code == 200
    deadline = time.monotonic() + 20  # the follower looks every 2 s
    while cached(server.data, gone) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cached(server.data, gone) == []
    assert not any(studies["gone"][0].encode() in p.read_bytes() for p in metadata.iterdir())
    assert len(cached(server.data, kept)) == 6  # another study's entries stay
    assert "cache_purged entries=8" in server.log()
