"""A bounded fuzz of the DICOM door (bench/fuzz.py): 400 seeded cases of mutated
A-ASSOCIATE-RQs, command sets, datasets and whole streams, each on its own connection.  Every
50 cases DCMTK's echoscu must get its C-ECHO answered and the server (all its processes) must
stay within its memory; at the end nothing the server refused is in the index, and every
instance it acknowledged is."""

from __future__ import annotations

import sqlite3

import pytest

from bench.fuzz import fuzz
from bench.procstat import descendants, pss_bytes
from support.lightbox import LightboxProcess

CASES, SEED = 400, 20261207
MAX_PSS_MB = 250  # the service's budget is 200 MB under load; idle it is far below


@pytest.mark.slow
def test_fuzzed_dicom_keeps_answering_bounded_and_stores_nothing_refused(lightbox: LightboxProcess) -> None:
    assert lightbox.proc is not None
    peaks: list[float] = []

    def between(done: int) -> None:
        echoed = lightbox.echoscu()
        assert echoed.returncode == 0, f"C-ECHO failed after {done} cases: {echoed.stdout}{echoed.stderr}"
        peaks.append(sum(map(pss_bytes, descendants(lightbox.proc.pid))) / 2**20)  # type: ignore[union-attr]
        assert peaks[-1] < MAX_PSS_MB, f"{peaks[-1]:.0f} MB after {done} cases"

    outcome = fuzz("127.0.0.1", lightbox.dicom_port, SEED, CASES, between)
    with sqlite3.connect(f"file:{lightbox.data / 'index.sqlite'}?mode=ro", uri=True) as db:
        stored = {row[0] for row in db.execute("SELECT sop_uid FROM instance")}
    assert not (outcome.refused & stored), sorted(outcome.refused & stored)[:5]
    assert outcome.acknowledged <= stored, sorted(outcome.acknowledged - stored)[:5]
    assert outcome.acknowledged, "no case stored anything: the baseline is broken"
    assert outcome.refused, "no case was refused: the mutations do not reach the checks"
    assert "Traceback" not in lightbox.log()
