"""This box's name, time zone and AE title (the wizard's first steps, the Admin page's "This
box") and Connect a modality's values and first contact, over HTTP against a real `lightbox
serve`, with DCMTK as the modality; and the nightly backup time in the clinic's zone."""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from pathlib import Path

import pytest

from appliance.backup.schedule import nightly_due
from appliance.web.display import MONTHS
from support.dicomgen import make_study
from support.lightbox import LightboxProcess
from support.qr import findscu
from support.web import Client


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"query_retrieve_from": "any"}  # findscu from any AE: the C-FIND answers name the AE title


def audit_details(admin: Client) -> list[str]:
    return [e["detail"] for e in admin.get("/api/audit?event=ApplicationActivity").json()["events"]]


def test_site_needs_an_admin_csrf_and_good_values_and_is_audited(server, admin, viewer) -> None:
    for path in ("/api/site", "/api/wizard", "/api/connect", "/wizard/clinic", "/admin/connect"):
        assert viewer.get(path).status_code == 403, path
    assert Client(admin.base).get("/api/site").status_code == 401
    assert viewer.api_post("/api/site", clinic_name="Taken over").status_code == 403
    assert admin.post("/api/site", data={"clinic_name": "No token"}).status_code == 403
    evil = {"X-CSRF-Token": admin.csrf(), "Origin": "http://evil.example"}
    assert admin.post("/api/site", data={"clinic_name": "Elsewhere"}, headers=evil).status_code == 403
    for field, value, message in (
        ("time_zone", "Mars/Olympus_Mons", "unknown time zone"),
        ("time_zone", "../../etc/passwd", "unknown time zone"),
        ("aet", "BACK\\SLASH", "invalid AE title"),
        ("aet", "SEVENTEEN_LETTERS", "invalid AE title"),
        ("clinic_name", "x" * 81, "at most 80"),
    ):
        answer = admin.api_post("/api/site", **{field: value})
        assert answer.status_code == 400 and message in answer.json()["error"], (field, answer.text)
    assert admin.get("/api/site").json()["clinic_name"] == ""  # nothing of that was kept

    answer = admin.api_post("/api/site", clinic_name="  Dental   Care  Ltd ")
    assert answer.status_code == 200 and answer.json()["clinic_name"] == "Dental Care Ltd"
    assert "site: clinic name 'Dental Care Ltd'" in audit_details(admin)
    assert "Dental Care Ltd" in viewer.get("/").text  # in every page's header
    assert admin.api_post("/api/site", clinic_name="").json()["clinic_name"] == ""


def test_ae_title_change_holds_for_the_next_association(server: LightboxProcess, admin, tmp_path: Path) -> None:
    files = make_study(tmp_path / "study", 1, patient_id="AET-1")
    assert server.storescu(*files).returncode == 0

    def retrieve_aet(called: str) -> str:
        server.aet = called  # Lightbox answers any called AE title; the answers name its own
        (match,) = findscu(server, tmp_path / f"find-{time.monotonic_ns()}", "-S", "QueryRetrieveLevel=STUDY",
                           "PatientID=AET-1", "RetrieveAETitle")  # fmt: skip
        return match.RetrieveAETitle

    assert retrieve_aet("LIGHTBOX") == "LIGHTBOX"
    assert admin.api_post("/api/site", aet="CLINIC_PACS").status_code == 200
    assert "site: AE title CLINIC_PACS" in audit_details(admin)
    assert admin.get("/api/connect").json()["values"]["aet"] == "CLINIC_PACS"
    # Each association goes to one of the two worker processes: both follow at once.
    assert [retrieve_aet("CLINIC_PACS") for _ in range(4)] == ["CLINIC_PACS"] * 4
    # The setting's own title again: the box follows the setting from then on.
    assert admin.api_post("/api/site", aet="LIGHTBOX").json()["aet"] == "LIGHTBOX"
    assert retrieve_aet("LIGHTBOX") == "LIGHTBOX"


def test_time_zone_drives_the_times_shown_and_the_appliance_file(server: LightboxProcess, admin) -> None:
    created = admin.get("/api/users").json()["users"][0]["created_at"]

    def shown(zone: str | None) -> str:
        t = dt.datetime.fromtimestamp(created, zoneinfo.ZoneInfo(zone) if zone else None)
        return f"{t.day} {MONTHS[t.month - 1]} {t.year} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"

    assert shown("Pacific/Kiritimati") != shown("Pacific/Pago_Pago")  # 25 hours apart: never the same
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        assert admin.api_post("/api/site", time_zone=zone).status_code == 200
        assert shown(zone) in admin.get("/admin").text
        assert (server.data / "timezone").read_text() == zone + "\n"  # for the appliance's own clock
    assert admin.api_post("/api/site", time_zone="").status_code == 200
    assert shown(None) in admin.get("/admin").text and not (server.data / "timezone").exists()
    assert "site: time zone Pacific/Pago_Pago" in audit_details(admin)


def test_nightly_backup_time_is_the_clinics() -> None:
    now = dt.datetime(2026, 12, 1, 1, 30, tzinfo=dt.UTC).timestamp()  # 02:30 in Berlin, 01:30 in UTC
    last_run = dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.UTC).timestamp()  # after yesterday's 02:00 in both
    assert nightly_due(last_run, "02:00", now, zoneinfo.ZoneInfo("Europe/Berlin"))
    assert not nightly_due(last_run, "02:00", now, zoneinfo.ZoneInfo("UTC"))


def test_connect_shows_a_new_contact_and_its_first_study(server: LightboxProcess, admin, tmp_path: Path) -> None:
    assert server.echoscu(aet="BEFORE").returncode == 0
    page_opened = time.time()
    after = server.health()["last_change"]
    values = admin.get("/api/connect").json()["values"]
    assert values["ports"] == [server.dicom_port] and values["addresses"] == ["127.0.0.1"]
    assert values["host_name"] == ""  # discovery is off in the tests: no .local name is announced
    url = f"/api/connect?since={page_opened}&after={after}"
    assert admin.get(url).json()["contact"] is None  # BEFORE called before the page was opened

    assert server.echoscu(aet="XRAY_2").returncode == 0
    contact = admin.get(url).json()["contact"]
    assert contact["device"]["aet"] == "XRAY_2" and contact["study"] is None
    files = make_study(tmp_path / "xray", 1, patient_name="ROE^RICHARD", StudyDescription="Chest")
    assert server.storescu(*files, aet="XRAY_2").returncode == 0
    study = admin.get(url).json()["contact"]["study"]
    assert study["study"]["patient_name"] == "ROE^RICHARD" and study["study"]["description"] == "Chest"
    assert admin.get("/api/connect?since=soon").status_code == 400
