"""The study's report through its JSON API, against `lightbox serve` with a veterinary study sent
by DCMTK storescu: drafts replaced, a final kept and amended (never changed), every version a
Basic Text SR read back with pydicom (flags, verifying observer, predecessor, text, the study's
identity), a second editor's stale save refused with 409, non-ASCII text kept, bad text refused,
every step in the audit trail."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pydicom
import pytest

from support.dicomgen import make_study
from support.scu import rows
from support.web import VIEWER, VIEWER_PASSWORD, Client

CLINIC = "Clinique Vétérinaire du Lac"
IDENTITY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientSpeciesDescription",
            "PatientBreedDescription", "ResponsiblePerson", "StudyInstanceUID", "StudyDate", "StudyTime",
            "AccessionNumber", "StudyID", "StudyDescription")  # fmt: skip
SR = "1.2.840.10008.5.1.4.1.1.88.11"


@pytest.fixture(scope="module")
def study(server: Any, admin: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    files = make_study(tmp_path_factory.mktemp("study"), 2, patient_name="Müller^Rex", patient_id="VET-9",
                       PatientSpeciesDescription="Canine", PatientBreedDescription="Dachshund",
                       ResponsiblePerson="Müller^Jürgen", StudyDescription="Thorax", AccessionNumber="A-77")  # fmt: skip
    result = server.storescu(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert admin.api_post("/api/site", clinic_name=CLINIC).status_code == 200
    return {"uid": str(pydicom.dcmread(files[0]).StudyInstanceUID), "first": pydicom.dcmread(files[0])}


def post(client: Any, study_uid: str, path: str = "", **body: Any) -> Any:
    return client.post(f"/api/studies/{study_uid}/report{path}", json=body, headers={"X-CSRF-Token": client.csrf()})


def stored(server: Any, sop_uid: str) -> pydicom.Dataset:
    (key,) = rows(server.data, "SELECT file_key FROM instance WHERE sop_uid = ?", sop_uid)[0]
    return pydicom.dcmread(server.data / "storage" / key)


def report_uids(server: Any, study_uid: str) -> list[str]:
    return [uid for (uid,) in rows(server.data, "SELECT i.sop_uid FROM instance i JOIN series se ON se.id = i.series_id"
                                   " JOIN study st ON st.id = se.study_id WHERE st.study_uid = ? AND i.sop_class_uid = ?"
                                   " ORDER BY i.instance_number", study_uid, SR)]  # fmt: skip


def test_report_draft_final_amendment(server: Any, viewer: Any, admin: Any, study: dict[str, Any]) -> None:
    uid = study["uid"]
    assert viewer.get(f"/api/studies/{uid}/report").json()["current"] is None

    first = post(viewer, uid, text="Heart size normal.", base="")
    assert first.status_code == 200, first.text
    draft = first.json()["current"]
    assert not draft["final"] and draft["author"] == VIEWER and draft["instance_number"] == 1
    # A second editor who opened the page before that save: refused, not overwritten.
    stale = post(admin, uid, text="Something else.", base="")
    assert stale.status_code == 409 and VIEWER in stale.json()["error"], stale.text

    second = post(viewer, uid, text="Heart size normal.\nLungs clear.", base=draft["sop_uid"]).json()["current"]
    assert report_uids(server, uid) == [second["sop_uid"]]  # the earlier draft replaced, not kept
    ds = stored(server, second["sop_uid"])
    assert (ds.CompletionFlag, ds.VerificationFlag, ds.PreliminaryFlag) == ("PARTIAL", "UNVERIFIED", "PRELIMINARY")
    assert "VerifyingObserverSequence" not in ds

    final = post(viewer, uid, text="Heart size normal.\nLungs clear.", base=second["sop_uid"], final=True).json()
    signed = final["current"]
    assert signed["final"] and not signed["amends"] and report_uids(server, uid) == [signed["sop_uid"]]
    ds = stored(server, signed["sop_uid"])
    assert ds.SOPClassUID == SR and ds.Modality == "SR" and ds.SpecificCharacterSet == "ISO_IR 100"  # Müller
    assert (ds.CompletionFlag, ds.VerificationFlag, ds.PreliminaryFlag) == ("COMPLETE", "VERIFIED", "FINAL")
    observer = ds.VerifyingObserverSequence[0]
    assert (str(observer.VerifyingObserverName), observer.VerifyingOrganization) == (VIEWER, CLINIC)
    assert observer.VerificationDateTime[:8] == ds.ContentDate
    assert ds.ConceptNameCodeSequence[0].CodeValue == "18748-4"
    assert ds.ContentSequence[1].TextValue == "Heart size normal.\r\nLungs clear."
    for keyword in IDENTITY:
        assert ds.get(keyword) == study["first"].get(keyword), keyword
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert len(evidence) == 2

    # Final: not changed by a plain save, only amended.
    refused = post(viewer, uid, text="Changed.", base=signed["sop_uid"], final=True)
    assert refused.status_code == 409 and "amended" in refused.json()["error"]
    amending = post(admin, uid, text="Heart size normal.\nLungs clear.\nLeft kidney small.", base=signed["sop_uid"],
                    amend=True).json()["current"]  # fmt: skip
    assert not amending["final"] and amending["amends"] == signed["sop_uid"]
    amended = post(admin, uid, text=amending["text"], base=amending["sop_uid"], final=True).json()
    current = amended["current"]
    assert current["final"] and current["amends"] == signed["sop_uid"] and current["author"] == "admin"
    assert report_uids(server, uid) == [signed["sop_uid"], current["sop_uid"]]  # the earlier final kept
    assert [v["sop_uid"] for v in amended["history"]] == [current["sop_uid"], signed["sop_uid"]]
    ds = stored(server, current["sop_uid"])
    predecessor = ds.PredecessorDocumentsSequence[0]
    assert predecessor.StudyInstanceUID == uid
    ref = predecessor.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (SR, signed["sop_uid"])
    assert stored(server, signed["sop_uid"]).ContentSequence[1].TextValue == "Heart size normal.\r\nLungs clear."

    printed = viewer.get(f"/studies/{uid}/report/print")
    assert printed.status_code == 200 and "Final report, amended" in printed.text and CLINIC in printed.text

    # Every step audited, for its author.
    events = admin.get("/api/audit?limit=200").json()["events"]
    details = [(e["user_name"], e["detail"]) for e in events if e["study_uid"] == uid]
    for expected in ((VIEWER, "report draft saved (version 1)"), (VIEWER, "report draft saved (version 2)"),
                     (VIEWER, "report finalised (version 3)"), ("admin", "report amendment draft saved (version 4)"),
                     ("admin", "report amended (version 5)"), (VIEWER, "report printed (final, version 5)")):  # fmt: skip
        assert expected in details, details
    assert sum(1 for user, d in details if d.startswith("deleted instance")) == 3  # the replaced drafts


def test_report_text_keeps_every_script(server: Any, viewer: Any, tmp_path: Path) -> None:
    files = make_study(tmp_path, 1, patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう", patient_id="JP-1",
                       SpecificCharacterSet=["", "ISO 2022 IR 87"])  # fmt: skip
    assert server.storescu(*files).returncode == 0
    uid = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    text = "Befund: Größe ü, café, Straße.\n所見：心臓の大きさは正常です。"
    answer = post(viewer, uid, text=text, base="")
    assert answer.status_code == 200, answer.text
    assert answer.json()["current"]["text"] == text
    ds = stored(server, answer.json()["current"]["sop_uid"])
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.ContentSequence[1].TextValue == text.replace("\n", "\r\n")
    assert str(ds.PatientName) == "Yamada^Tarou=山田^太郎=やまだ^たろう"  # from ISO 2022 to UTF-8, the same name
    # Latin text, a Japanese name: still UTF-8 (the Latin-1 case: the Müller study above).
    latin = post(viewer, uid, text="Café, Größe.", base=answer.json()["current"]["sop_uid"]).json()["current"]
    assert stored(server, latin["sop_uid"]).SpecificCharacterSet == "ISO_IR 192"


def test_report_refuses_bad_text(server: Any, viewer: Any, study: dict[str, Any], tmp_path: Path) -> None:
    files = make_study(tmp_path, 1, patient_id="BAD-1")
    assert server.storescu(*files).returncode == 0
    uid = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    before = server.count()
    for body, words in (
        ({"text": "x" * (64 * 1024 + 1), "base": ""}, "at most 64 KB"),
        ({"text": "bell \x07 here", "base": ""}, "control character U+0007"),
        ({"text": "escape \x1b[31m", "base": ""}, "control character U+001B"),
        ({"text": "   \n  ", "base": ""}, "empty"),
        ({"text": 12, "base": ""}, "must be a string"),
        ({"text": "ok", "base": "", "final": "yes"}, "true or false"),
        ({"text": "ok", "base": "", "signed": True}, "JSON object of"),
    ):
        answer = post(viewer, uid, **body)
        assert answer.status_code == 400 and words in answer.json()["error"], (body.keys(), answer.text)
    bad_json = viewer.post(f"/api/studies/{uid}/report", data="{", headers={"X-CSRF-Token": viewer.csrf(),
                                                                          "Content-Type": "application/json"})  # fmt: skip
    assert bad_json.status_code == 400
    assert post(viewer, "1.2.3.4", text="ok", base="").status_code == 404
    # Without the CSRF token: refused.
    assert viewer.post(f"/api/studies/{uid}/report", json={"text": "ok", "base": ""}).status_code == 403
    assert server.count() == before  # nothing half-stored
    assert post(viewer, uid, text="x" * (64 * 1024), base="").status_code == 200  # the cap itself is allowed


def test_report_draft_discarded(server: Any, viewer: Any, tmp_path: Path) -> None:
    files = make_study(tmp_path, 1, patient_id="DISC-1")
    assert server.storescu(*files).returncode == 0
    uid = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    draft = post(viewer, uid, text="Not sure yet.", base="").json()["current"]
    assert post(viewer, uid, "/discard", base="").status_code == 409
    assert post(viewer, "1.2.3.4", "/discard", base="").status_code == 404
    answer = post(viewer, uid, "/discard", base=draft["sop_uid"])
    assert answer.status_code == 200 and answer.json()["current"] is None
    assert report_uids(server, uid) == []
    final = post(viewer, uid, text="Normal.", base="", final=True).json()["current"]
    assert post(viewer, uid, "/discard", base=final["sop_uid"]).status_code == 409  # a final is never discarded


def test_report_two_saves_at_once_one_wins(server: Any, viewer: Any, admin: Any, tmp_path: Path) -> None:
    """Two editors of one draft press Save at the same moment: one is stored, the other is a
    409, and the study has one draft (a script with HTTP Basic, no session, takes the same path)."""
    files = make_study(tmp_path, 1, patient_id="RACE-1")
    assert server.storescu(*files).returncode == 0
    uid = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    draft = post(viewer, uid, text="First words.", base="").json()["current"]
    script = Client(viewer.base)
    script.auth = (VIEWER, VIEWER_PASSWORD)
    clients = [(viewer, viewer.csrf()), (admin, admin.csrf()), (script, "")]
    barrier = threading.Barrier(len(clients))

    def save(client: Any, token: str) -> int:
        barrier.wait(timeout=30)
        body = {"text": f"Saved by {id(client)}.", "base": draft["sop_uid"]}
        return client.post(f"/api/studies/{uid}/report", json=body, headers={"X-CSRF-Token": token}).status_code

    with ThreadPoolExecutor(len(clients)) as pool:
        statuses = sorted(pool.map(lambda c: save(*c), clients))
    assert statuses == [200, 409, 409], statuses
    assert len(report_uids(server, uid)) == 1
