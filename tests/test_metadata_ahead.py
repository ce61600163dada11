"""The DICOM JSON of what arrives is made ahead of a viewer's request: once arrivals pause (or
have waited too long), only the latest ones, never for an instance removed meanwhile."""

from __future__ import annotations

import time
from pathlib import Path

import pydicom
import pytest

from appliance.archive import Archive, ArchiveOptions, Origin
from appliance.imaging.cache import group_prefix
from appliance.web.dicomweb import metadata
from appliance.web.dicomweb.metadata import InstanceMetadata, bulk_base, instance_json
from support.dicomgen import make_study

ORIGIN = Origin("dicom", calling_ae="MODALITY", address="127.0.0.1")


def entries(data: Path, sops: list[str]) -> list[str]:
    """The SOP Instance UIDs among ``sops`` that have a metadata cache entry."""
    folder = data / "cache" / "metadata"
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    return [sop for sop in sops if any(n.startswith(group_prefix(sop)) for n in names)]


@pytest.fixture
def arrived(tmp_path: Path) -> tuple[Archive, list[str], list[Path]]:
    files = make_study(tmp_path / "src", 5, rows=16, columns=16, patient_id="AHEAD", patient_name="Ahead^Unit")
    archive = Archive(tmp_path / "data", ArchiveOptions(min_free_mb=0))
    for path in files:
        assert archive.ingest(path, ORIGIN).ok
    yield archive, [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files], files
    archive.close()


def test_made_once_arrivals_pause_and_as_a_request_makes_it(arrived, tmp_path):
    archive, sops, files = arrived
    maker = InstanceMetadata(archive.data_dir)
    assert maker.make_ahead(archive, now=time.time()) == 0  # still arriving: ingest keeps the CPU
    assert entries(archive.data_dir, sops) == []
    assert maker.make_ahead(archive, now=time.time() + metadata.QUIET + 1) == 5
    assert entries(archive.data_dir, sops) == sops
    assert maker.make_ahead(archive, now=time.time() + metadata.QUIET + 1) == 0  # the cursor moved on
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    entry = archive.instance(sops[0])
    assert entry is not None
    base = bulk_base("/", ds.StudyInstanceUID, ds.SeriesInstanceUID, sops[0])
    made = maker.json(archive.file_path(entry.file_key), sops[0], base)
    assert made == instance_json(archive.file_path(entry.file_key), base)  # what a request would make


def test_overdue_arrivals_are_made_while_others_keep_coming(arrived, monkeypatch):
    archive, sops, _ = arrived
    maker = InstanceMetadata(archive.data_dir)
    monkeypatch.setattr(metadata, "OVERDUE", 0.0)  # every arrival so far is overdue
    assert maker.make_ahead(archive) == 5


def test_only_the_latest_arrivals_and_never_a_removed_one(arrived, monkeypatch):
    archive, sops, _ = arrived
    monkeypatch.setattr(metadata, "AHEAD_WINDOW", 4)  # the last 3 stored and the removal
    archive.corrections.delete("instance", sops[4], "AHEAD", "admin")
    maker = InstanceMetadata(archive.data_dir)
    assert maker.make_ahead(archive, now=time.time() + metadata.QUIET + 1) == 2
    assert entries(archive.data_dir, sops) == sops[2:4]
