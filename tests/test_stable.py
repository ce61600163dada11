"""Stable studies (Orthanc's StableAge): quiet for `stable_age` seconds, marked once, in the DB."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from support.dicomgen import make_dataset
from support.scu import rows, store

pytestmark = pytest.mark.slow  # waits out the stable age, restarts

SUCCESS = 0x0000
WAIT = 30.0  # seconds; the stability check runs every few seconds


def stable(data: Path, study_uid: str) -> int | None:
    found = rows(data, "SELECT stable FROM study WHERE study_uid = ?", study_uid)
    return found[0][0] if found else None


def stable_changes(data: Path, study_uid: str) -> list[int]:
    return [seq for (seq,) in rows(data, "SELECT seq FROM change WHERE kind = 'study_stable' AND study_uid = ? "
                                   "ORDER BY seq", study_uid)]  # fmt: skip


def wait_until_stable(data: Path, study_uid: str, changes: int) -> None:
    """Poll (bounded) until the study is stable and has ``changes`` 'study_stable' rows."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if stable(data, study_uid) == 1 and len(stable_changes(data, study_uid)) >= changes:
            break
        time.sleep(0.25)
    assert stable(data, study_uid) == 1, f"study not stable within {WAIT:.0f} s"
    assert len(stable_changes(data, study_uid)) == changes


def send(server, study_uid: str, series_uid: str, number: int) -> None:
    ds = make_dataset(study_uid=study_uid, series_uid=series_uid, patient_id="STABLE", instance_number=number)
    assert store(server, [ds]) == [SUCCESS]


def test_study_becomes_stable_then_unstable_and_survives_restart(lightbox_factory) -> None:
    server = lightbox_factory(stable_age=2)
    data = server.data
    a, a_series = generate_uid(), generate_uid()
    b, b_series = generate_uid(), generate_uid()

    send(server, a, a_series, 1)
    send(server, a, a_series, 2)
    assert stable(data, a) == 0  # just received: not stable yet
    wait_until_stable(data, a, changes=1)
    first_seq = stable_changes(data, a)[0]
    stored_seq = max(
        s for (s,) in rows(data, "SELECT seq FROM change WHERE kind = 'instance_stored' AND study_uid = ?", a)
    )
    assert first_seq > stored_seq  # the stable mark follows the last instance in the change log

    # Another instance: unstable again, at once (the C-STORE success is sent after the commit).
    send(server, a, generate_uid(), 3)
    assert stable(data, a) == 0
    wait_until_stable(data, a, changes=2)

    # Study B arrives and the server stops before B can become stable.
    send(server, b, b_series, 1)
    assert stable(data, b) == 0
    assert server.stop() == 0
    assert stable(data, a) == 1 and len(stable_changes(data, a)) == 2
    assert stable(data, b) == 0 and stable_changes(data, b) == []

    # After a restart the states are as they were: A stays stable (not marked again), B is
    # still unstable until the stability check finds it quiet.
    server.start()
    assert stable(data, a) == 1
    wait_until_stable(data, b, changes=1)
    assert len(stable_changes(data, a)) == 2, "a stable study must not be marked stable again after a restart"
    assert server.count("studies") == 2 and server.count() == 4


def test_stable_state_is_kept_by_a_restart_with_a_longer_stable_age(lightbox_factory) -> None:
    """State lives in the database: a restart with another setting does not undo a mark."""
    server = lightbox_factory(stable_age=2)
    study, series = generate_uid(), generate_uid()
    send(server, study, series, 1)
    wait_until_stable(server.data, study, changes=1)
    assert server.stop() == 0

    again = lightbox_factory(name=server.data.name, stable_age=3600)
    assert again.data == server.data
    assert stable(again.data, study) == 1
    send(again, study, series, 2)  # new instance: unstable, and with a one hour age it stays so
    assert stable(again.data, study) == 0
    assert len(stable_changes(again.data, study)) == 1
