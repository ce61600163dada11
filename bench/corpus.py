"""Generated DICOM corpora, cached in bench/.corpus/ (git-ignored; delete it to regenerate):
the CT series and radiographs most benches send, and the building blocks of the others'."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.harness import BENCH_DIR, MB, log

try:
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        CTImageStorage,
        DigitalXRayImageStorageForPresentation,
        ExplicitVRLittleEndian,
        generate_uid,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(f"bench: error: needs numpy and pydicom ({exc}); run it with Lightbox's venv (.venv/bin/python)")

CORPUS_ROOT = BENCH_DIR / ".corpus"
CORPUS_VERSION = 1  # bump when the generators change, to invalidate cached corpora


@dataclass(frozen=True)
class Corpus:
    name: str
    dicom_dir: Path
    files: tuple[Path, ...]
    total_bytes: int

    def __len__(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class Study:
    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    study_uid: str
    study_date: str
    study_time: str
    accession: str
    description: str


_ACCESSIONS = itertools.count(1)


def new_study(patient_name: str, patient_id: str, description: str, day: int = 0) -> Study:
    return Study(
        patient_name=patient_name,
        patient_id=patient_id,
        birth_date=f"19{50 + day % 50:02d}0{1 + day % 9}15",
        sex="MF"[day % 2],
        study_uid=generate_uid(),
        study_date=f"2024{1 + day % 12:02d}{1 + day % 28:02d}",
        study_time=f"{8 + day % 10:02d}{day % 60:02d}00",
        accession=f"A{next(_ACCESSIONS):09d}",
        description=description,
    )


def base_dataset(sop_class: str, study: Study, series_uid: str, modality: str) -> Dataset:
    """Patient, study, series and SOP common modules, plus Part 10 file meta."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.birth_date
    ds.PatientSex = study.sex
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study.study_time
    ds.AccessionNumber = study.accession
    ds.StudyID = "1"
    ds.StudyDescription = study.description
    ds.ReferringPhysicianName = "REFERRER^BENCH"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.Modality = modality
    ds.Manufacturer = "Lightbox Bench"
    ds.InstitutionName = "Bench General Hospital"
    return ds


def set_pixels(ds: Dataset, pixels: np.ndarray, bits_stored: int, signed: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.add_new(0x7FE00010, "OW", pixels.astype("<i2" if signed else "<u2").tobytes())


def save_part10(ds: Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)


def ct_phantom(size: int = 512) -> np.ndarray:
    """Stored values (HU + 1024) of an axial body-like slice: air, tissue, a bone ring."""
    y, x = np.mgrid[0:size, 0:size]
    body = ((x - size / 2) / (size * 0.42)) ** 2 + ((y - size / 2) / (size * 0.32)) ** 2
    hu = np.full((size, size), -1000.0)
    hu[body < 1.0] = 40.0
    hu[(body > 0.80) & (body < 0.86)] = 700.0
    return hu + 1024.0


def write_ct_series(out: Path, slices: int, rng: np.random.Generator, label: str) -> None:
    study = new_study(f"BENCH^{label}", f"BENCH-{label}", f"CT bench {label}")
    series_uid, frame_uid = generate_uid(), generate_uid()
    phantom = ct_phantom()
    for i in range(slices):
        ds = base_dataset(CTImageStorage, study, series_uid, "CT")
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesDescription = "Axial 1.0mm"
        ds.BodyPartExamined = "CHEST"
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.InstanceNumber = i + 1
        z = -0.5 * slices + i * 1.0
        ds.ImagePositionPatient = [-250.0, -250.0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = z
        ds.SliceThickness = 1.0
        ds.PixelSpacing = [0.9765625, 0.9765625]
        ds.KVP = 120
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        noise = rng.normal(0.0, 20.0, phantom.shape)
        pixels = np.clip(phantom * (0.95 + 0.1 * i / max(slices, 1)) + noise, 0, 4095)
        set_pixels(ds, pixels, bits_stored=16, signed=True)
        save_part10(ds, out / f"CT{i + 1:05d}.dcm")


def write_radiographs(out: Path, count: int, rng: np.random.Generator) -> None:
    rows, cols = 2500, 2000  # 10 MB of uint16 each
    y, x = np.mgrid[0:rows, 0:cols]
    chest = 2500.0 - 1500.0 * (((x - cols / 2) / (cols * 0.4)) ** 2 + ((y - rows / 2) / (rows * 0.45)) ** 2)
    for i in range(count):
        study = new_study("BENCH^DX", f"BENCH-DX-{i + 1:03d}", "Chest PA", day=i)
        ds = base_dataset(DigitalXRayImageStorageForPresentation, study, generate_uid(), "DX")
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.SeriesDescription = "Chest PA"
        ds.BodyPartExamined = "CHEST"
        ds.ViewPosition = "PA"
        ds.PatientOrientation = ["L", "F"]
        ds.InstanceNumber = 1
        ds.ImagerPixelSpacing = [0.139, 0.139]
        ds.PixelSpacing = [0.139, 0.139]
        ds.KVP = 125
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.RescaleType = "US"
        ds.WindowCenter = 2048
        ds.WindowWidth = 4096
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1
        ds.BurnedInAnnotation = "NO"
        pixels = np.clip(chest + rng.normal(0.0, 60.0, chest.shape), 0, 4095)
        set_pixels(ds, pixels, bits_stored=12, signed=False)
        save_part10(ds, out / f"DX{i + 1:03d}.dcm")


def load_or_build(name: str, build: Callable[[Path], None]) -> Corpus:
    """Return the cached corpus `name`, generating it (into a temp dir, then renamed) if needed."""
    root = CORPUS_ROOT / f"{name}-v{CORPUS_VERSION}"
    manifest = root / "manifest.json"
    if not manifest.exists():
        CORPUS_ROOT.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=CORPUS_ROOT))
        log(f"generating corpus {name} ...")
        started = time.perf_counter()
        (tmp / "dicom").mkdir()
        try:
            build(tmp / "dicom")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        files = sorted(p.relative_to(tmp / "dicom") for p in (tmp / "dicom").rglob("*.dcm"))
        total = sum((tmp / "dicom" / p).stat().st_size for p in files)
        (tmp / "manifest.json").write_text(json.dumps({"files": [str(p) for p in files], "bytes": total}))
        tmp.chmod(0o755)  # mkdtemp makes it private
        tmp.rename(root)
        log(f"generated {name}: {len(files)} files, {total / MB:.0f} MB in {time.perf_counter() - started:.1f} s")
    data = json.loads(manifest.read_text())
    dicom_dir = root / "dicom"
    return Corpus(name, dicom_dir, tuple(dicom_dir / p for p in data["files"]), data["bytes"])


def ct_series(slices: int, rng: np.random.Generator, label: str = "CT") -> Corpus:
    """One CT series of ``slices`` 512x512 int16 slices (0.5 MB each), cached as ct-N (or, with
    another label, as label-N)."""
    return load_or_build(f"{label.lower()}-{slices}", lambda d: write_ct_series(d, slices, rng, label))


def radiographs(count: int, rng: np.random.Generator) -> Corpus:
    """``count`` ~10 MB DX radiographs, one study each, cached by count."""
    return load_or_build(f"dx-{count}", lambda d: write_radiographs(d, count, rng))
