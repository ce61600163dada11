"""A pynetdicom SCU for tests that need the exact DIMSE status, and read-only index queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification

NO_RESPONSE = -1  # the peer closed or aborted without a C-STORE-RSP


def store(
    server,
    items: Iterable[Dataset | Path],
    aet: str = "PYSCU",
    sop_class: str = SecondaryCaptureImageStorage,
) -> list[int]:
    """C-STORE each dataset or Part 10 file on one association; return each Status.

    Files are streamed as they are on disk (``STORE_SEND_CHUNKED_DATASET``): the command's
    Affected SOP Instance UID comes from the file's meta header, the bytes are not re-encoded.
    """
    ae = AE(ae_title=aet)
    ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established, "association refused"
    chunked = _config.STORE_SEND_CHUNKED_DATASET
    statuses = []
    try:
        for item in items:
            if isinstance(item, Dataset) and "TransferSyntaxUID" not in getattr(item, "file_meta", {}):
                item.file_meta = FileMetaDataset()
                item.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            _config.STORE_SEND_CHUNKED_DATASET = isinstance(item, Path)
            try:
                rsp = assoc.send_c_store(item)
            finally:
                _config.STORE_SEND_CHUNKED_DATASET = chunked
            statuses.append(int(rsp.Status) if rsp is not None and "Status" in rsp else NO_RESPONSE)
            if not assoc.is_established:
                break
    finally:
        if assoc.is_established:
            assoc.release()
    return statuses


def echo(server, aet: str = "PYSCU") -> int:
    ae = AE(ae_title=aet)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established, "association refused"
    try:
        rsp = assoc.send_c_echo()
        return int(rsp.Status) if rsp is not None and "Status" in rsp else NO_RESPONSE
    finally:
        assoc.release()


def rows(data: Path, sql: str, *args: object) -> list[tuple]:
    """Run one query against the index of the data folder ``data`` (a fresh connection)."""
    db = sqlite3.connect(data / "index.sqlite", timeout=30)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def stored_files(data: Path) -> list[Path]:
    return sorted(p for p in (data / "storage").rglob("*") if p.is_file())
