"""pydicom's bundled test corpus, and an independent judgement of which files are valid
storable instances (shared by the C-STORE and STOW-RS corpus tests)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_files
from pydicom.uid import UID, generate_uid

from support.tools import dcmtk

DEFLATED = {"1.2.840.10008.1.2.1.99"}


def corpus() -> list[Path]:
    return sorted(Path(p) for p in get_testdata_files() if Path(p).is_file())


def storescu_copy(source: Path, out: Path) -> Path:
    """``source`` (a corpus file) written to ``out`` as storescu sends it, with new UIDs (several
    of pydicom's files share theirs: MR_small in each syntax), so that what a server stores is
    what was written."""
    ds = dcmread(source)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = (generate_uid() for _ in range(3))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for tag in [e.tag for e in ds if e.tag.element == 0 or e.tag == 0xFFFCFFFC]:
        del ds[tag]  # group lengths and trailing padding, which storescu drops: the rest goes as written
    for element in ds:
        if isinstance(element.value, str) and element.value and not element.value.strip():
            element.value = ""  # storescu sends a value of spaces as empty
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        ds["PixelData"].VR = "OB"  # pydicom's files say OW, which DCMTK refuses to send
    ds.save_as(out)
    return out


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
