"""A study or series as DICOM media (PS3.10, PS3.11 General Purpose): files named
``IMAGES/SE000001/IM000001`` and a DICOMDIR describing them, built from the index alone.

The names say nothing about the patient; the DICOMDIR is small (a few hundred bytes per
image), the images themselves are streamed by whoever writes the media.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, MediaStorageDirectoryStorage, generate_uid

from appliance.archive.index import database

FILESET_ID = "LIGHTBOX"


@dataclass(frozen=True)
class MediaFile:
    """One stored instance and the name it gets on the media."""

    name: str  # e.g. IMAGES/SE000001/IM000001
    file_key: str
    size: int
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    instance_number: int | None
    series_uid: str
    modality: str
    series_number: int | None
    study_uid: str
    study_date: str
    study_time: str
    study_description: str
    study_id: str
    accession: str
    patient_id: str
    patient_name: str


def media_files(study_uid: str, series_uid: str | None = None) -> list[MediaFile]:
    """The instances of a study (or of one of its series), in series and instance order, each
    with its media name.  Empty when nothing matches."""
    sql = (
        "SELECT i.file_key, i.size, i.sop_uid, i.sop_class_uid, i.transfer_syntax, i.instance_number,"
        " se.series_uid, se.modality, se.series_number, st.study_uid, st.study_date, st.study_time,"
        " st.description, st.study_id, st.accession, p.patient_id, p.name"
        " FROM instance i JOIN series se ON se.id = i.series_id JOIN study st ON st.id = se.study_id"
        " JOIN patient p ON p.id = st.patient_id WHERE st.study_uid = ?"
        + (" AND se.series_uid = ?" if series_uid else "")
        + " ORDER BY se.series_number IS NULL, se.series_number, se.series_uid, i.instance_number, i.sop_uid"
    )
    rows = database.execute_sql(sql, (study_uid, series_uid) if series_uid else (study_uid,)).fetchall()
    files: list[MediaFile] = []
    folders: dict[str, int] = {}
    counts: dict[int, int] = {}
    for row in rows:
        folder = folders.setdefault(row[6], len(folders) + 1)
        counts[folder] = counts.get(folder, 0) + 1
        files.append(MediaFile(f"IMAGES/SE{folder:06d}/IM{counts[folder]:06d}", *row))
    return files


def _record(kind: str, **values: object) -> Dataset:
    record = Dataset()
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = 0xFFFF
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = kind
    for keyword, value in values.items():
        setattr(record, keyword, value)
    return record


def _records(files: list[MediaFile]) -> tuple[list[Dataset], list[tuple[int, int | None, int | None]]]:
    """Directory records depth first, and for each: (its level, index of the next record at
    the same level under the same parent, index of its first child)."""
    records: list[Dataset] = []
    parents: list[int | None] = []
    levels: list[int] = []
    open_at: list[tuple[str, int]] = []  # (key, record index) of the open record at each level
    for f in files:
        keys = (f.patient_id + "\0" + f.patient_name, f.study_uid, f.series_uid, f.sop_uid)
        for level, key in enumerate(keys):
            if len(open_at) > level and open_at[level][0] == key:
                continue
            del open_at[level:]
            records.append(_level_record(level, f))
            parents.append(open_at[level - 1][1] if level else None)
            levels.append(level)
            open_at.append((key, len(records) - 1))
    links: list[tuple[int, int | None, int | None]] = []
    for i, level in enumerate(levels):
        following = next((j for j in range(i + 1, len(records)) if levels[j] <= level), None)
        sibling = (
            following
            if following is not None and levels[following] == level and parents[following] == parents[i]
            else None
        )
        child = i + 1 if i + 1 < len(records) and levels[i + 1] == level + 1 else None
        links.append((level, sibling, child))
    return records, links


def _level_record(level: int, f: MediaFile) -> Dataset:
    if level == 0:
        return _record("PATIENT", PatientName=f.patient_name, PatientID=f.patient_id)
    if level == 1:
        return _record(
            "STUDY",
            StudyDate=f.study_date,
            StudyTime=f.study_time,
            StudyDescription=f.study_description,
            StudyInstanceUID=f.study_uid,
            StudyID=f.study_id,
            AccessionNumber=f.accession,
        )
    if level == 2:
        return _record(
            "SERIES", Modality=f.modality, SeriesInstanceUID=f.series_uid,
            SeriesNumber="" if f.series_number is None else f.series_number,
        )  # fmt: skip
    return _record(
        "IMAGE",
        ReferencedFileID=f.name.split("/"),
        ReferencedSOPClassUIDInFile=f.sop_class_uid,
        ReferencedSOPInstanceUIDInFile=f.sop_uid,
        ReferencedTransferSyntaxUIDInFile=f.transfer_syntax,
        InstanceNumber="" if f.instance_number is None else f.instance_number,
    )


def dicomdir(files: list[MediaFile]) -> bytes:
    """The DICOMDIR (PS3.3 F.2, PS3.10 8) for ``files``, as Part 10 bytes.

    Offsets count bytes from the start of the file; they are fixed-size, so the file is
    written once to learn where each record starts, then again with the offsets filled in.
    """
    records, links = _records(files)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.FileSetID = FILESET_ID
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.SpecificCharacterSet = "ISO_IR 192"  # names are kept decoded; UTF-8 writes them all
    ds.DirectoryRecordSequence = records

    def encode() -> bytes:
        out = BytesIO()
        dcmwrite(out, ds, enforce_file_format=True)
        return out.getvalue()

    first = dcmread(BytesIO(encode()))
    starts = [item.seq_item_tell for item in first.DirectoryRecordSequence]
    for record, (_level, sibling, child) in zip(records, links, strict=True):
        record.OffsetOfTheNextDirectoryRecord = starts[sibling] if sibling is not None else 0
        record.OffsetOfReferencedLowerLevelDirectoryEntity = starts[child] if child is not None else 0
    roots = [i for i, (level, _s, _c) in enumerate(links) if level == 0]
    if roots:
        ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = starts[roots[0]]
        ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = starts[roots[-1]]
    return encode()
