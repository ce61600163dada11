"""A made dataset stored through the archive's ingest, the one way in: written to the spool
folder with Lightbox's meta header, ingested (fsynced and committed before this returns), the
spool file removed."""

from __future__ import annotations

import contextlib

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from appliance.archive import IMPLEMENTATION_CLASS_UID, Archive, Origin, Outcome


class NotStored(RuntimeError):
    """Ingest refused or failed the instance (a full disk, ...): the reason is the ingest's."""

    def __init__(self, reason: str, disk_full: bool) -> None:
        super().__init__(reason)
        self.disk_full = disk_full


def store(archive: Archive, ds: Dataset, origin: Origin, transfer_syntax: UID = ExplicitVRLittleEndian) -> str:
    """Store ``ds`` in its study (an instance of another study is refused); its SOP Instance UID.
    ``ds`` must hold its values already encoded for ``transfer_syntax`` (encapsulated pixels
    for a compressed one)."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    path = archive.storage.spool_path(".dcm")
    try:
        ds.save_as(path, enforce_file_format=True)
        result = archive.ingest(path, origin, study_uid=str(ds.StudyInstanceUID))
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if not result.ok:
        raise NotStored(result.reason or result.outcome.value, result.outcome == Outcome.OUT_OF_RESOURCES)
    return str(ds.SOPInstanceUID)
