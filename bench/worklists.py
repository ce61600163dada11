"""Worklists for tests and bench.worklist: seeded orders, the same orders as DCMTK worklist
files (``.wl``) in a ``wlmscpfs`` data folder, and ``wlmscpfs`` started on a free port.

``wlmscpfs`` (DCMTK's Basic Worklist Management SCP) reads every ``*.wl`` file of
``<data folder>/<called AE title>/`` at each query; it knows nothing of an order's state or of
an expiry, so only the orders Lightbox would answer are written.  It runs with ``-dfr``: by
default it skips a file that leaves a key such as Scheduled Procedure Step Description empty,
which Lightbox's orders may (the form asks only for patient, procedure, modality and date).
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bench.servers import free_port, port_accepts

WORKLIST_MODEL = "1.2.840.10008.5.1.4.31"
WLM_AET = "WLMSCPFS"
FAMILIES = ("Müller", "Muller", "Doe", "Smith", "Schäfer", "Dubois", "Nguyen", "Garcia", "Rossi", "Novak")
GIVEN = ("Anna", "Jürgen", "Jane", "Tom", "Léa", "Rex", "Bella", "Max")
MODALITIES = ("US", "CR", "DX", "CT")
STATIONS = ("US1", "CR1", "DX1", "CT1")
SPECIES = ("Canine", "Feline", "Equine", "")


def orders(count: int, seed: int = 17, first_day: date | None = None, days: int = 14) -> list[dict[str, str]]:
    """``count`` orders (worklist fields) spread over ``days`` days from ``first_day`` (today)."""
    rng, start = random.Random(seed), first_day or date.today()
    made = []
    for n in range(count):
        modality = rng.randrange(len(MODALITIES))
        species = rng.choice(SPECIES)
        made.append({
            "patient_name": f"{rng.choice(FAMILIES)}^{rng.choice(GIVEN)}",
            "patient_id": f"PID{n:06d}",
            "birth_date": f"{rng.randrange(1940, 2024)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}",
            "sex": rng.choice("MFO"),
            "species": species,
            "breed": "Mixed" if species else "",
            "responsible_person": f"Owner^{n}" if species else "",
            "responsible_person_role": "OWNER" if species else "",
            "responsible_organization": "",
            "accession": f"ACC{n:07d}",
            "requested_procedure_id": f"RP{n:06d}",
            "requested_procedure_description": f"Exam {n % 7}",
            "step_id": f"SPS{n:06d}",
            "modality": MODALITIES[modality],
            "station_aet": STATIONS[modality],
            "start_date": (start + timedelta(days=rng.randrange(days))).strftime("%Y%m%d"),
            "start_time": f"{rng.randrange(7, 19):02d}{rng.choice((0, 15, 30, 45)):02d}00",
            "step_description": f"Step {n % 5}",
            "performing_physician": "Vet^Vera",
            "referring_physician": "Ref^Rita",
        })  # fmt: skip
    return made


def as_dataset(item: dict[str, Any]) -> Dataset:
    """A worklist item as ``wlmscpfs`` reads it (the veterinary keys left out: it drops them)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName, ds.PatientID = item["patient_name"], item["patient_id"]
    ds.PatientBirthDate, ds.PatientSex = item["birth_date"], item["sex"]
    ds.AccessionNumber, ds.ReferringPhysicianName = item["accession"], item["referring_physician"]
    ds.RequestedProcedureID = item["requested_procedure_id"]
    ds.RequestedProcedureDescription = item["requested_procedure_description"]
    ds.StudyInstanceUID = item.get("study_uid") or generate_uid()
    step = Dataset()
    step.Modality, step.ScheduledStationAETitle = item["modality"], item["station_aet"]
    step.ScheduledProcedureStepStartDate = item["start_date"]
    step.ScheduledProcedureStepStartTime = item["start_time"]
    step.ScheduledProcedureStepDescription = item["step_description"]
    step.ScheduledProcedureStepID = item["step_id"]
    step.ScheduledPerformingPhysicianName = item["performing_physician"]
    step.ScheduledProcedureStepStatus = "SCHEDULED"
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def write_wl_files(folder: Path, items: Sequence[dict[str, Any]], aet: str = WLM_AET) -> Path:
    """The items as ``<folder>/<aet>/NNNNNN.wl`` (and the ``lockfile`` DCMTK's docs ask for)."""
    target = folder / aet
    target.mkdir(parents=True, exist_ok=True)
    (target / "lockfile").touch()
    for n, item in enumerate(items):
        ds = as_dataset(item)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = WORKLIST_MODEL
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(target / f"{n:06d}.wl", enforce_file_format=True)
    return folder


@contextmanager
def wlmscpfs(folder: Path, log_path: Path) -> Iterator[int]:
    """``/usr/bin/wlmscpfs`` serving ``folder`` on a free port (its port)."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["/usr/bin/wlmscpfs", "-dfr", "-dfp", str(folder), str(port)], stdout=log, stderr=log)
    try:
        for _ in range(200):
            if port_accepts(port):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"wlmscpfs exited: {log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
