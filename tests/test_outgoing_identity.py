"""No file leaves Lightbox with a UID it was not stored under (DESIGN rule 8).

A study of compressed instances, lossless and lossy, goes to peers that accept only
uncompressed syntaxes — a DCMTK storescp by C-MOVE and by forwarding, DCMTK getscu by
C-GET — so every instance is decompressed on the way out.  Every UID of every received file
(every UI element, nested ones included, and the meta header's SOP Instance/Class UIDs) must
be the one it was stored under, and the lossless pixels must be the stored ones.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid

from support.peers import StoreSCP
from support.qr import add_node, movescu_to_storescp
from support.tools import dcmtk
from support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("netns")  # storescp cannot bind to 127.0.0.1 only

# (pydicom test file, lossless): every decoder Lightbox uses on the way out.
SOURCES = (
    ("MR_small_jp2klossless.dcm", True),  # JPEG 2000 lossless
    ("MR_small_RLE.dcm", True),  # RLE
    ("MR_small_jpeg_ls_lossless.dcm", True),  # JPEG-LS lossless
    ("SC_rgb_jpeg_gdcm.dcm", True),  # JPEG lossless, process 14 SV1
    ("SC_rgb_jpeg_dcmtk.dcm", False),  # JPEG baseline
    ("JPGExtended.dcm", False),  # JPEG extended, 12 bits
    ("693_J2KI.dcm", False),  # JPEG 2000 (lossy)
    ("JPEGLSNearLossless_16.dcm", False),  # JPEG-LS near-lossless
)
IMAGE_META = ("MediaStorageSOPInstanceUID", "MediaStorageSOPClassUID")


def compressed_study(folder: Path) -> tuple[str, list[Path]]:
    """One study (one patient) of the compressed test files, pixel data untouched."""
    folder.mkdir(parents=True)
    study_uid, paths = generate_uid(), []
    for n, (name, _lossless) in enumerate(SOURCES, 1):
        ds = dcmread(get_testdata_file(name))
        assert UID(ds.file_meta.TransferSyntaxUID).is_compressed, name
        ds.PatientID, ds.PatientName, ds.StudyInstanceUID = "UIDS-1", "Identity^Kept", study_uid
        ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n
        paths.append(folder / f"{n}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return study_uid, paths


def uids(ds: Dataset, prefix: str = "") -> dict[str, str]:
    """Every UI value of ``ds``, by tag path (sequence items included)."""
    found: dict[str, str] = {}
    for element in ds:
        path = f"{prefix}{element.tag}"
        if element.VR == "SQ":
            for i, item in enumerate(element.value):
                found.update(uids(item, f"{path}[{i}]."))
        elif element.VR == "UI" and element.value:
            found[path] = str(element.value)
    return found


def identity(path: Path) -> dict[str, str]:
    ds = dcmread(path)
    return {**uids(ds), **{k: str(ds.file_meta.get(k, "")) for k in IMAGE_META}}


def assert_same_identity_and_pixels(sent: list[Path], received: list[Path]) -> None:
    by_uid = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in received}
    assert len(received) == len(sent)
    for path, (name, lossless) in zip(sent, SOURCES, strict=True):
        original = dcmread(path)
        got_path = by_uid.get(str(original.SOPInstanceUID))
        assert got_path is not None, f"{name}: not received under its SOP Instance UID"
        got = dcmread(got_path)
        assert not UID(got.file_meta.TransferSyntaxUID).is_compressed, name
        assert identity(got_path) == identity(path), name
        assert got.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID, name
        if lossless:
            assert np.array_equal(got.pixel_array, original.pixel_array), name


@pytest.mark.slow
def test_cmove_to_an_uncompressed_only_storescp_keeps_every_uid(server, tmp_path):
    study_uid, files = compressed_study(tmp_path / "sent")
    assert server.cli("import", str(tmp_path / "sent")).returncode == 0
    result, received = movescu_to_storescp(server, study_uid, tmp_path / "received")
    assert "Received Final Move Response (Success)" in result.stderr, result.stdout + result.stderr
    assert_same_identity_and_pixels(files, received)


@pytest.mark.slow
def test_getscu_receives_every_instance_under_its_stored_uids(server, tmp_path):
    study_uid, files = compressed_study(tmp_path / "sent")
    assert server.cli("import", str(tmp_path / "sent")).returncode == 0
    add_node(server, "GETSCU", 1, "get")
    out = tmp_path / "got"
    out.mkdir()
    result = subprocess.run(
        [dcmtk("getscu"), "-v", "-aet", "GETSCU", "-aec", server.aet, "-od", str(out),
         "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
         "127.0.0.1", str(server.dicom_port)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_identity_and_pixels(files, sorted(out.iterdir()))


@pytest.mark.slow
def test_forwarding_to_an_uncompressed_only_storescp_keeps_every_uid(lightbox_factory, tmp_path):
    _study_uid, files = compressed_study(tmp_path / "sent")
    scp = StoreSCP(tmp_path / "received", aet="FWD_DEST")
    server = lightbox_factory(stable_age=1, dicom_workers=0)
    try:
        add_node(server, "FWD_DEST", scp.port, "store")
        assert server.cli("forward", "add", "--to", "FWD_DEST").returncode == 0
        # dcmsend proposes each file's own syntax (storescu would decompress them itself).
        sent = subprocess.run(
            [dcmtk("dcmsend"), "-aec", server.aet, "127.0.0.1", str(server.dicom_port), *map(str, files)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        wait_for(lambda: len(scp.files()) == len(files), "the study was not forwarded")
        received = scp.files()
    finally:
        scp.stop()
    assert_same_identity_and_pixels(files, received)
