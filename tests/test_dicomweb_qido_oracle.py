"""Oracle: the C-FIND oracle's corpus in Orthanc (with its DICOMweb plugin) and in Lightbox,
a few hundred generated QIDO-RS searches sent to both with dicomweb-client, the answers
compared: the matched UIDs and the default attributes both return.  Orthanc is asked with
raw values in the request line (see ``raw_qido``), UID lists comma-separated.

Where Orthanc departs, the difference is one of test_cfind_oracle's KNOWN_DIFFERENCES,
checked to be exactly that difference, or listed here.
"""

from __future__ import annotations

import json
import random
import socket
from pathlib import Path

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset
from test_cfind_oracle import KNOWN_DIFFERENCES, _matches, explained, random_query, seeded, tally

from support.netns import private_network
from support.peers import ORTHANC_DICOMWEB
from support.tools import require
from support.web import ADMIN, ADMIN_PASSWORD, base_url, first_admin

pytestmark = pytest.mark.slow  # Orthanc as the oracle

QUERIES = 200
TEXT_KEYS = ("StudyDescription", "SeriesDescription", "AccessionNumber")
QIDO_DIFFERENCES = KNOWN_DIFFERENCES | {
    "text-case-folded": "orthanc-dicomweb 1.7 matches text wildcards (LO, SH) case-insensitively (StudyDescription=*a* "
    "finds 'Abdomen CT'); PS3.4 C.2.2.2.4 makes that matching case-sensitive, as Lightbox and Orthanc's own C-FIND "
    "do; only person names may be matched insensitively.",
}
RESOURCE = {"STUDY": "studies", "SERIES": "series", "IMAGE": "instances"}
COMPARED = {  # default attributes of PS3.18 Table 10.6.1-5 that both answer, besides the keys matched
    "STUDY": ["StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "AccessionNumber", "ModalitiesInStudy",
              "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"],
    "SERIES": ["SeriesInstanceUID", "StudyInstanceUID", "Modality", "SeriesNumber", "NumberOfSeriesRelatedInstances"],
    "IMAGE": ["SOPInstanceUID", "SeriesInstanceUID", "SOPClassUID", "InstanceNumber"],
}  # fmt: skip


def answers(client: DICOMwebClient | int, level: str, keys: dict[str, str]) -> tuple[list[str], set[tuple]]:
    """Lightbox through dicomweb-client; Orthanc (given as its HTTP port) through ``raw_qido``."""
    asked = sorted(set(COMPARED[level]) | set(keys))
    fields = [k for k in asked if k not in COMPARED[level]]
    if isinstance(client, int):
        found = raw_qido(client, RESOURCE[level], keys, fields)
    else:
        found = getattr(client, f"search_for_{RESOURCE[level]}")(search_filters=keys, fields=fields)
    return asked, {tuple(_norm(Dataset.from_json(r).get(k, "")) for k in asked) for r in found}


def raw_qido(port: int, resource: str, keys: dict[str, str], fields: list[str]) -> list[dict]:
    """A QIDO-RS search with its values unencoded in the request line: orthanc-dicomweb 1.7 does
    not percent-decode them (``PatientID=PID01%2A`` finds nothing where ``PID01*`` does), and
    a client that encodes as RFC 3986 asks (dicomweb-client, requests) never matches it.  Raw
    UTF-8 it refuses (400): searches for non-ASCII values are not put to it (``not_asked``)."""
    query = "&".join([f"{k}={v}" for k, v in keys.items()] + [f"includefield={f}" for f in fields])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as peer:
        peer.sendall(f"GET /dicom-web/{resource}?{query} HTTP/1.0\r\nAccept: application/dicom+json\r\n\r\n".encode())
        answer = b"".join(iter(lambda: peer.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] == b"200", head
    return json.loads(body) if body.strip() else []


def _norm(value: object) -> object:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return tuple(sorted(str(v) for v in value))  # type: ignore[union-attr]
    return "" if value is None else str(value).strip()


def case_folded(keys: dict[str, str], asked: list[str], ours: set[tuple], theirs: set[tuple]) -> str | None:
    """Whether Orthanc's extra answers are exactly those a case-insensitive text match adds."""
    text = {k: v for k, v in keys.items() if k in TEXT_KEYS}
    if not text or not ours < theirs:
        return None
    for row in theirs - ours:
        values = {k: str(row[asked.index(k)]) for k in text}
        if not all(_matches(values[k].upper(), p.upper()) for k, p in text.items()):
            return None
        if all(_matches(values[k], p) for k, p in text.items()):
            return None  # a case-sensitive match too: not this difference
    return "text-case-folded"


def run_oracle(tmp_path: Path, lightbox_factory) -> dict:
    rng = random.Random(20261207)
    plugin = {"Plugins": [str(require(ORTHANC_DICOMWEB))], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
              "LimitFindResults": 0, "LimitFindInstances": 0}  # Orthanc cuts at 100 by default  # fmt: skip
    with seeded(tmp_path, lightbox_factory, rng, {}, **plugin) as (lightbox, orthanc, values):
        first_admin(lightbox)
        session = requests.Session()
        session.trust_env, session.auth = False, (ADMIN, ADMIN_PASSWORD)
        ours_client = DICOMwebClient(url=base_url(lightbox) + "/dicom-web", session=session)
        report: dict = {"queries": 0, "not_asked": 0, "equal": 0, "matches": 0, "known": {}, "unexplained": []}
        while report["queries"] < QUERIES:
            _, level, keys = random_query(rng, values)
            if level == "PATIENT":
                continue  # QIDO-RS has no patient level
            # UID lists as PS3.18 writes them (comma-separated); orthanc-dicomweb ignores a "\\" list.
            keys = {k: v.replace("\\", ",") if k.endswith("UID") else v for k, v in keys.items()}
            if not all(v.isascii() for v in keys.values()):
                report["not_asked"] += 1  # orthanc-dicomweb answers 400 to raw UTF-8 (see raw_qido)
                continue
            asked, ours = answers(ours_client, level, keys)
            _, theirs = answers(orthanc.http_port, level, keys)
            reason = None if ours == theirs else (
                explained(level, keys, asked, ours, theirs) or case_folded(keys, asked, ours, theirs))  # fmt: skip
            tally(report, {"level": level, "keys": keys, "counts": [len(ours), len(theirs)]}, ours, theirs, reason)
        return report


def test_qido_answers_match_orthanc_dicomweb(tmp_path, lightbox_factory):
    with private_network():
        report = run_oracle(tmp_path, lightbox_factory)
    print(json.dumps({k: v for k, v in report.items() if k != "known"} | {
        "known": {k: len(v) for k, v in report["known"].items()}}, indent=1, ensure_ascii=False))  # fmt: skip
    assert report["queries"] == QUERIES and report["matches"] > QUERIES  # the queries do find things
    assert report["unexplained"] == [], json.dumps(report["unexplained"][:5], indent=1, ensure_ascii=False)
    assert set(report["known"]) <= set(QIDO_DIFFERENCES)
