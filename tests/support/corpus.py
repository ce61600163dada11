"""pydicom's bundled test corpus, and an independent judgement of which files are valid
storable instances (shared by the C-STORE and STOW-RS corpus tests)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_files
from pydicom.uid import UID

from support.tools import dcmtk

DEFLATED = {"1.2.840.10008.1.2.1.99"}


def corpus() -> list[Path]:
    return sorted(Path(p) for p in get_testdata_files() if Path(p).is_file())


def sendable(path: Path):
    """(sop_class, sop_instance, transfer_syntax) when the file has a usable meta header."""
    try:
        meta = dcmread(path, stop_before_pixels=True).file_meta
        return UID(meta.MediaStorageSOPClassUID), str(meta.MediaStorageSOPInstanceUID), UID(meta.TransferSyntaxUID)
    except Exception:
        return None


def is_valid_instance(path: Path, meta_must_agree: bool = True) -> bool:
    """An independent judgement of 'valid storable instance': the four identifying UIDs are
    valid UIDs, the syntax is not Deflate and (when the meta header is sent as the command's
    identity, as by a raw sender) the meta header agrees with the dataset."""
    try:
        ds = dcmread(path, stop_before_pixels=True)
    except Exception:
        return False
    if not dcmtk_parses_whole_file(path):
        return False  # truncated: pydicom reads short values without complaint, DCMTK does not
    meta = ds.file_meta
    uids = [ds.get(k) for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")]
    if any(u is None or not UID(str(u)).is_valid or len(str(u)) > 64 for u in uids):
        return False
    if str(meta.get("TransferSyntaxUID")) in DEFLATED:
        return False
    if not meta_must_agree:
        return True
    return str(meta.MediaStorageSOPInstanceUID) == str(ds.SOPInstanceUID) and str(meta.MediaStorageSOPClassUID) == str(
        ds.SOPClassUID
    )


def dcmtk_parses_whole_file(path: Path) -> bool:
    return subprocess.run([dcmtk("dcmdump"), "-q", str(path)], capture_output=True, timeout=60).returncode == 0
