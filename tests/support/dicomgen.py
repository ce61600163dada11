"""Synthetic DICOM instances for tests: small, valid Part 10 files with chosen values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def make_dataset(
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    patient_id: str = "PID-1",
    patient_name: str = "Doe^Jane",
    birth_date: str = "19800101",
    modality: str = "OT",
    rows: int = 16,
    columns: int = 16,
    instance_number: int = 1,
    seed: int = 0,
    **extra: object,
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = birth_date
    ds.PatientSex = "F"
    ds.StudyDate = "20261123"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC1"
    ds.StudyID = "1"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = np.random.default_rng(seed).integers(0, 4096, (rows, columns), dtype=np.uint16).tobytes()
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def write(ds: Dataset, path: Path) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def make_study(folder: Path, count: int, **kwargs: object) -> list[Path]:
    """``count`` instances of one new study and series, written under ``folder``."""
    study_uid = kwargs.pop("study_uid", None) or generate_uid()
    series_uid = kwargs.pop("series_uid", None) or generate_uid()
    return [
        write(
            make_dataset(study_uid=study_uid, series_uid=series_uid, instance_number=i + 1, seed=i, **kwargs),
            folder / f"{i:05d}.dcm",
        )
        for i in range(count)
    ]


def dataset_bytes(path: Path) -> bytes:
    """The dataset part of a Part 10 file (everything after the meta header)."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    with open(path, "rb") as f:
        read_preamble(f, force=True)
        _read_file_meta_info(f)
        return f.read()
