"""Oracle: the same corpus in Orthanc and Lightbox, a few hundred generated C-FIND queries
against both, answer sets compared.

Both run inside a private network namespace (Orthanc cannot bind to 127.0.0.1 only).  Where
Orthanc departs from PS3.4, the difference is listed in KNOWN_DIFFERENCES with its clause and
checked to be exactly that difference, not skipped.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind as PATIENT_ROOT,
)
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind as STUDY_ROOT,
)

from appliance.archive.intake.charset import normalise_name
from support.dicomgen import make_dataset, write
from support.netns import private_network
from support.peers import Orthanc
from support.tools import dcmtk

pytestmark = pytest.mark.slow  # Orthanc as the oracle

SCU_AET = "ORACLE"
QUERIES = 300
NAMES = ["Müller^Jürgen", "Muller^Anna", "García^José", "Garcia^Maria", "Doe^Jane", "Doe^John", "Smith^Anna",
         "Smithson^Bob", "Nguyễn^Văn", "Ølund^Åse", "Brown^Charlie", "Lee^Min"]  # fmt: skip
MODALITIES = ["CT", "MR", "US", "CR", "OT"]
RETURNED = {  # keys asked at each level besides the matching ones
    "PATIENT": ["PatientID", "PatientName", "PatientBirthDate", "PatientSex"],
    "STUDY": ["StudyInstanceUID", "PatientID", "StudyDate", "AccessionNumber", "ModalitiesInStudy",
              "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"],
    "SERIES": ["SeriesInstanceUID", "Modality", "SeriesDescription", "NumberOfSeriesRelatedInstances"],
    "IMAGE": ["SOPInstanceUID", "SOPClassUID"],
}  # fmt: skip
UNIQUE = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}

# Where Orthanc 1.10.1 and Lightbox differ; `explained` checks each is exactly that.
KNOWN_DIFFERENCES = {
    "accent-folding": "Lightbox matches person names accent-insensitively (find_fold_names); Orthanc folds case "
    "only. PS3.4 C.2.2.2.1 lets an SCP match PN insensitively: a policy difference, not an error.",
    "modalities-below-study": "ModalitiesInStudy as a key below the STUDY level: a non-unique key of a higher "
    "level, which a hierarchical query may not carry (PS3.4 C.4.1.2.1). Lightbox matches it as a relational "
    "query would; Orthanc matches nothing.",
}


def build_corpus(src: Path, rng: random.Random) -> dict[str, list[str]]:
    """~200 instances; returns the values queries are drawn from."""
    values: dict[str, list[str]] = {
        "StudyInstanceUID": [],
        "SOPInstanceUID": [],
        "AccessionNumber": [],
        "StudyDate": [],
    }
    n = 0
    for p, name in enumerate(NAMES * 2):
        patient = dict(patient_id=f"PID{p:03d}", patient_name=name, birth_date=f"19{rng.randrange(30, 99)}0{rng.randrange(1, 9)}1{rng.randrange(10)}",
                       PatientSex=rng.choice("MFO"))  # fmt: skip
        for _ in range(rng.randint(1, 2)):
            study = dict(study_uid=generate_uid(), StudyDate=f"20{rng.randrange(19, 25)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}",
                         StudyTime=f"{rng.randrange(7, 19):02d}{rng.randrange(60):02d}00", AccessionNumber=f"ACC{rng.randrange(10**5):05d}",
                         StudyDescription=rng.choice(["Thorax", "Head", "Abdomen CT", "Knee MR"]))  # fmt: skip
            values["StudyInstanceUID"].append(study["study_uid"])
            values["AccessionNumber"].append(study["AccessionNumber"])
            values["StudyDate"].append(study["StudyDate"])
            for s in range(rng.randint(1, 3)):
                series = dict(series_uid=generate_uid(), modality=rng.choice(MODALITIES), SeriesNumber=s + 1,
                              SeriesDescription=rng.choice(["Axial", "Sagittal", "Scout", "AP"]))  # fmt: skip
                for i in range(rng.randint(1, 3)):
                    ds = make_dataset(**patient, **study, **series, instance_number=i + 1, rows=2, columns=2,
                                      SpecificCharacterSet="ISO_IR 192")  # fmt: skip
                    values["SOPInstanceUID"].append(str(ds.SOPInstanceUID))
                    write(ds, src / f"{n:05d}.dcm")
                    n += 1
    return values


def random_query(rng: random.Random, values: dict[str, list[str]]) -> tuple[str, str, dict[str, str]]:
    """(model, level, matching keys)."""
    model = rng.choice(["STUDY_ROOT", "STUDY_ROOT", "PATIENT_ROOT"])
    levels = ["STUDY", "SERIES", "IMAGE"] + (["PATIENT"] if model == "PATIENT_ROOT" else [])
    level = rng.choice(levels)
    name = rng.choice(NAMES)
    pool = {
        "PatientName": [
            name,
            name.upper(),
            name[:3] + "*",
            "*" + name[2:5] + "*",
            "?" + name[1:],
            name.split("^")[0] + "^*",
        ],
        "PatientID": [f"PID{rng.randrange(24):03d}", "PID00*", "PID0?1"],
        "PatientSex": ["M", "F"],
    }
    if level != "PATIENT":
        dates = sorted(rng.sample(values["StudyDate"], 2))
        pool |= {
            "StudyDate": [dates[0], f"{dates[0]}-{dates[1]}", f"-{dates[0]}", f"{dates[1]}-"],
            "AccessionNumber": [rng.choice(values["AccessionNumber"]), "ACC1*"],
            "StudyInstanceUID": ["\\".join(rng.sample(values["StudyInstanceUID"], 2))],
            "ModalitiesInStudy": [rng.choice(MODALITIES)],
            "StudyDescription": ["*CT", "Head", "*a*"],
        }
    if level in ("SERIES", "IMAGE"):
        pool |= {"Modality": [rng.choice(MODALITIES)], "SeriesDescription": ["A*", "Scout"]}
    if level == "IMAGE":
        pool |= {"SOPInstanceUID": ["\\".join(rng.sample(values["SOPInstanceUID"], 3))]}
    keys = {k: rng.choice(pool[k]) for k in rng.sample(sorted(pool), rng.randint(1, 2))}
    return model, level, keys


def c_find(port: int, aet: str, model: str, level: str, keys: dict[str, str]) -> tuple[list[str], set[tuple]]:
    """(the keys asked, in order; the set of answers as tuples of their values)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = level
    asked = sorted(set(RETURNED[level]) | set(keys))
    for keyword in asked:
        setattr(ds, keyword, keys.get(keyword, ""))
    sop_class = PATIENT_ROOT if model == "PATIENT_ROOT" else STUDY_ROOT
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(sop_class)
    assoc = ae.associate("127.0.0.1", port, ae_title=aet)
    assert assoc.is_established, aet
    answers, final = set(), None
    try:
        for status, identifier in assoc.send_c_find(ds, sop_class):
            if not status:
                break
            if status.Status in (0xFF00, 0xFF01):
                answers.add(tuple(_norm(identifier.get(k, "")) for k in asked))
            else:
                final = status.Status
    finally:
        assoc.release()
    assert final == 0x0000, (aet, model, level, keys, final)
    return asked, answers


def _norm(element) -> object:
    value = getattr(element, "value", element)
    if isinstance(value, (list, MultiValue)):
        return tuple(sorted(str(v) for v in value))
    return "" if value is None else str(value).strip()


def explained(level: str, keys: dict[str, str], asked: list[str], ours: set[tuple], theirs: set[tuple]) -> str | None:
    """The KNOWN_DIFFERENCES entry that accounts for this difference exactly, if any."""
    if "ModalitiesInStudy" in keys and level in ("SERIES", "IMAGE") and not theirs:
        return "modalities-below-study"
    pattern = keys.get("PatientName")
    if pattern is not None and theirs < ours:
        names = [row[asked.index("PatientName")] for row in ours - theirs]
        # Each extra answer matches only when accents are folded, not with case folding alone.
        if all(
            _matches(normalise_name(n), normalise_name(pattern)) and not _matches(n.upper(), pattern.upper())
            for n in names
        ):
            return "accent-folding"
    return None


def _matches(value: str, pattern: str) -> bool:
    return (
        re.fullmatch("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), value)
        is not None
    )


@contextmanager
def seeded(tmp_path: Path, lightbox_factory, rng: random.Random, lightbox_settings: dict[str, Any],
           **orthanc_settings: Any) -> Iterator[tuple[Any, Orthanc, dict[str, list[str]]]]:  # fmt: skip
    """The corpus stored in a new Lightbox and in Orthanc (storescu to each): (lightbox,
    orthanc, the values queries are drawn from)."""
    values = build_corpus(tmp_path / "corpus", rng)
    files = sorted((tmp_path / "corpus").iterdir())
    lightbox = lightbox_factory(**lightbox_settings)
    # Orthanc answers in its DefaultEncoding (Latin-1 unless told), dropping what it cannot encode.
    orthanc = Orthanc(tmp_path / "orthanc", {"oracle": [SCU_AET, "127.0.0.1", 1]}, DefaultEncoding="Utf8",
                      **orthanc_settings)  # fmt: skip
    try:
        assert lightbox.storescu(tmp_path / "corpus", extra=("+sd",)).returncode == 0
        stored = subprocess.run(
            [dcmtk("storescu"), "-aet", SCU_AET, "-aec", "ORTHANC", "+sd", "127.0.0.1", str(orthanc.dicom_port), str(tmp_path / "corpus")],
            capture_output=True, timeout=300, env={**os.environ, "TCP_NODELAY": "1"},
        )  # fmt: skip
        assert stored.returncode == 0, stored.stderr
        assert lightbox.count() == len(files) == orthanc.rest("GET", "/statistics")["CountInstances"]
        yield lightbox, orthanc, values
    finally:
        orthanc.stop()


def tally(report: dict, entry: dict[str, Any], ours: set[tuple], theirs: set[tuple], reason: str | None) -> None:
    """One query's answers into the report: equal, a known difference, or unexplained."""
    report["queries"] += 1
    report["matches"] += len(ours)
    if ours == theirs:
        report["equal"] += 1
        return
    entry |= {"lightbox_only": sorted(map(str, ours - theirs))[:3], "orthanc_only": sorted(map(str, theirs - ours))[:3]}
    if reason:
        report["known"].setdefault(reason, []).append(entry)
    else:
        report["unexplained"].append(entry)


def run_oracle(tmp_path: Path, lightbox_factory) -> dict:
    rng = random.Random(20250101)
    with seeded(tmp_path, lightbox_factory, rng, {"query_retrieve_from": "any"}) as (lightbox, orthanc, values):
        report: dict = {"queries": 0, "equal": 0, "matches": 0, "known": {}, "unexplained": []}
        for _ in range(QUERIES):
            model, level, keys = random_query(rng, values)
            asked, ours = c_find(lightbox.dicom_port, lightbox.aet, model, level, keys)
            _, theirs = c_find(orthanc.dicom_port, "ORTHANC", model, level, keys)
            reason = None if ours == theirs else explained(level, keys, asked, ours, theirs)
            tally(report, {"model": model, "level": level, "keys": keys}, ours, theirs, reason)
        return report


def test_cfind_answers_match_orthanc(tmp_path, lightbox_factory):
    with private_network():
        report = run_oracle(tmp_path, lightbox_factory)
    print(json.dumps(report, indent=1, ensure_ascii=False))
    assert report["queries"] == QUERIES and report["matches"] > QUERIES  # the queries do find things
    assert report["unexplained"] == [], json.dumps(report["unexplained"][:5], indent=1, ensure_ascii=False)
    assert set(report["known"]) <= set(KNOWN_DIFFERENCES)
