"""Same SOP Instance UID twice, one Patient ID for two people, and odd calling AE titles,
all through a real `lightbox serve` over C-STORE."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from support.dicomgen import dataset_bytes, make_dataset, write
from support.scu import rows, store, stored_files

SUCCESS = 0x0000


def sop_uid_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def stored_path(server, sop_uid: str) -> Path:
    found = rows(server.data, "SELECT file_key FROM instance WHERE sop_uid = ?", sop_uid)
    assert len(found) == 1, f"{sop_uid}: {found}"
    return server.data / "storage" / found[0][0]


def incidents(server, kind: str) -> list[tuple]:
    return rows(server.data, "SELECT sop_uid, detail, calling_ae FROM incident WHERE kind = ?", kind)


def changes(server, kind: str, sop_uid: str | None = None) -> list[tuple]:
    sql = "SELECT seq, study_uid, series_uid, sop_uid FROM change WHERE kind = ?"
    return rows(server.data, sql + (" AND sop_uid = ?" if sop_uid else ""), kind, *([sop_uid] if sop_uid else []))


def two_versions(tmp_path: Path) -> tuple[str, Path, Path]:
    """Two files with one SOP Instance UID (same study and series) but other pixel data."""
    sop_uid, study_uid, series_uid = generate_uid(), generate_uid(), generate_uid()
    common = dict(sop_uid=sop_uid, study_uid=study_uid, series_uid=series_uid, patient_id="DUP-1")
    first = write(make_dataset(seed=1, **common), tmp_path / "first.dcm")
    second = write(make_dataset(seed=2, **common), tmp_path / "second.dcm")
    assert dataset_bytes(first) != dataset_bytes(second)
    return sop_uid, first, second


def test_same_instance_same_bytes_twice_is_stored_once(lightbox_factory, tmp_path: Path) -> None:
    server = lightbox_factory()
    path = write(make_dataset(patient_id="SAME-1"), tmp_path / "one.dcm")
    sop_uid = sop_uid_of(path)

    assert store(server, [path]) == [SUCCESS]
    assert store(server, [path, path]) == [SUCCESS, SUCCESS]  # again, also within one association

    assert server.count() == 1
    assert len(stored_files(server.data)) == 1
    assert dataset_bytes(stored_path(server, sop_uid)) == dataset_bytes(path)
    assert incidents(server, "duplicate_differs") == []
    assert len(changes(server, "instance_stored", sop_uid)) == 1


def test_different_bytes_keep_first(lightbox_factory, tmp_path: Path) -> None:
    server = lightbox_factory(duplicate_policy="keep-first")
    sop_uid, first, second = two_versions(tmp_path)

    assert store(server, [first], aet="FIRSTSCU") == [SUCCESS]
    kept = stored_path(server, sop_uid)
    assert store(server, [second], aet="SECONDSCU") == [SUCCESS]

    assert server.count() == 1
    assert stored_files(server.data) == [kept]
    assert dataset_bytes(kept) == dataset_bytes(first)
    found = incidents(server, "duplicate_differs")
    assert len(found) == 1
    assert found[0][0] == sop_uid and found[0][2] == "SECONDSCU"
    assert changes(server, "instance_replaced") == []
    assert rows(server.data, "SELECT calling_ae FROM instance WHERE sop_uid = ?", sop_uid) == [("FIRSTSCU",)]


def test_different_bytes_replace(lightbox_factory, tmp_path: Path) -> None:
    server = lightbox_factory(duplicate_policy="replace")
    sop_uid, first, second = two_versions(tmp_path)
    other = write(make_dataset(patient_id="DUP-1", study_uid=generate_uid()), tmp_path / "other.dcm")

    assert store(server, [first, other]) == [SUCCESS, SUCCESS]
    old = stored_path(server, sop_uid)
    counts_before = server.health()["counts"]
    levels = "SELECT p.num_studies, p.num_series, p.num_instances FROM patient p"
    patient_counts_before = rows(server.data, levels)

    assert store(server, [second], aet="RESENDER") == [SUCCESS]

    new = stored_path(server, sop_uid)
    assert new != old
    assert not old.exists(), "the replaced copy must be removed"
    assert dataset_bytes(new) == dataset_bytes(second)
    assert len(stored_files(server.data)) == 2
    counts_after = server.health()["counts"]
    assert {k: v for k, v in counts_after.items() if k != "bytes"} == {
        k: v for k, v in counts_before.items() if k != "bytes"
    }
    assert rows(server.data, levels) == patient_counts_before
    assert rows(server.data, "SELECT num_instances FROM series se JOIN instance i ON i.series_id = se.id "
                "WHERE i.sop_uid = ?", sop_uid) == [(1,)]  # fmt: skip
    assert len(changes(server, "instance_replaced", sop_uid)) == 1
    assert len(incidents(server, "duplicate_differs")) == 1
    assert rows(server.data, "SELECT calling_ae FROM instance WHERE sop_uid = ?", sop_uid) == [("RESENDER",)]


def patients(server, patient_id: str) -> list[tuple]:
    return sorted(
        rows(
            server.data,
            "SELECT name, name_norm, birth_date, identity_conflict, num_studies, num_instances "
            "FROM patient WHERE patient_id = ?",
            patient_id,
        )
    )


def test_same_patient_id_with_another_name_is_kept_apart(lightbox_factory) -> None:
    server = lightbox_factory()
    a = make_dataset(patient_id="ID-NAME", patient_name="Smith^Anna")
    b = make_dataset(patient_id="ID-NAME", patient_name="Jones^Bert")
    assert store(server, [a, b]) == [SUCCESS, SUCCESS]

    found = patients(server, "ID-NAME")
    assert [(r[0], r[3], r[4], r[5]) for r in found] == [("Jones^Bert", 1, 1, 1), ("Smith^Anna", 1, 1, 1)]
    assert len(incidents(server, "identity_conflict")) == 1
    assert server.count("patients") == 2


def test_same_patient_id_with_another_birth_date_is_kept_apart(lightbox_factory) -> None:
    server = lightbox_factory()
    a = make_dataset(patient_id="ID-DOB", patient_name="Smith^Anna", birth_date="19700101")
    b = make_dataset(patient_id="ID-DOB", patient_name="Smith^Anna", birth_date="19710101")
    unrelated = make_dataset(patient_id="ID-OTHER", patient_name="Other^Olga")
    assert store(server, [a, b, unrelated]) == [SUCCESS] * 3

    found = patients(server, "ID-DOB")
    assert [(r[2], r[3]) for r in found] == [("19700101", 1), ("19710101", 1)]
    assert len(incidents(server, "identity_conflict")) == 1
    assert [r[3] for r in patients(server, "ID-OTHER")] == [0]


def test_same_patient_id_and_name_in_other_case_and_accents_is_one_patient(lightbox_factory) -> None:
    server = lightbox_factory()
    a = make_dataset(patient_id="ID-FOLD", patient_name="Müller^José", SpecificCharacterSet="ISO_IR 192")
    b = make_dataset(patient_id="ID-FOLD", patient_name="MULLER^JOSE")
    c = make_dataset(patient_id="ID-FOLD", patient_name="muller^jose^^", SpecificCharacterSet="ISO_IR 100")
    assert store(server, [a, b, c]) == [SUCCESS] * 3

    found = patients(server, "ID-FOLD")
    assert len(found) == 1
    name, name_norm, _birth, conflict, num_studies, num_instances = found[0]
    assert (name, name_norm, conflict, num_studies, num_instances) == ("Müller^José", "muller^jose", 0, 3, 3)
    assert incidents(server, "identity_conflict") == []


# The calling AE title tests share the module's server: each looks only at its own instance.
@pytest.mark.parametrize(
    ("sent", "recorded"),
    [("modality", "modality"), ("ct_scanner1", "ct_scanner1"), ("CT1   ", "CT1"), (" US2", "US2"), ("A B", "A B")],
)
def test_lenient_calling_ae_titles_are_accepted_and_recorded(server, tmp_path: Path, sent: str, recorded: str) -> None:
    path = write(make_dataset(patient_id="AE-1"), tmp_path / "ae.dcm")
    result = server.storescu(path, aet=sent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Received Store Response (Success)" in result.stdout + result.stderr
    sop_uid = sop_uid_of(path)
    assert rows(server.data, "SELECT calling_ae, called_ae FROM instance WHERE sop_uid = ?", sop_uid) == [
        (recorded, server.aet)
    ]


def test_lower_case_calling_ae_over_pynetdicom(server) -> None:
    ds = make_dataset(patient_id="AE-2")
    assert store(server, [ds], aet="lower ae") == [SUCCESS]
    assert rows(server.data, "SELECT calling_ae FROM instance WHERE sop_uid = ?", str(ds.SOPInstanceUID)) == [
        ("lower ae",)
    ]


def test_blank_calling_ae_title_is_accepted_and_recorded_empty(server, tmp_path: Path) -> None:
    path = write(make_dataset(patient_id="AE-3"), tmp_path / "blank.dcm")
    result = server.storescu(path, aet=" " * 16)  # DCMTK refuses "", but sends 16 spaces
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Received Store Response (Success)" in result.stdout + result.stderr
    assert rows(server.data, "SELECT calling_ae FROM instance WHERE sop_uid = ?", sop_uid_of(path)) == [("",)]
