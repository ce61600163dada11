"""The audit trail over HTTP: pages cut by event id with their filters kept, both ways; the
studies an event names shown by patient, description and date."""

from __future__ import annotations

import re
from html import unescape

import pytest

from appliance.archive import Archive
from appliance.archive.registry import audit as audit_events
from support.web import Client, add_user, send_study


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"dicom_workers": 0}


@pytest.fixture(scope="module")
def trail(server, admin, tmp_path_factory) -> dict[str, str]:
    """120 study views by the admin, 3 downloads by a viewer, 2 failed logins, and an event
    naming a study the archive no longer has."""
    folder = tmp_path_factory.mktemp("studies")
    described = send_study(server, folder / "a", count=1, patient_name="Doe^Jane^Q", patient_id="A-1",
                           StudyDescription="Bitewings", StudyDate="20261123")  # fmt: skip
    bare = send_study(server, folder / "b", count=2, patient_name="Roe^Rick", patient_id="A-2", StudyDescription="")
    for n in range(120):
        assert admin.get(f"/api/studies/{described if n % 2 else bare}").status_code == 200
    viewer = add_user(admin, "frontdesk", "front desk password")
    for _ in range(3):
        assert viewer.get(f"/api/studies/{described}/archive.zip").status_code == 200
    for _ in range(2):
        assert Client(admin.base).login("frontdesk", "not the password").status_code == 401
    archive = Archive(server.data)  # another process, as `lightbox` commands are
    try:
        archive.audit.record(
            audit_events.EXPORT, "admin", "127.0.0.1", action="R", study_uid="1.2.3.4.5", detail="gone since"
        )
    finally:
        archive.close()
    return {"described": described, "bare": bare}


def audit(admin: Client, **params: object) -> dict:
    answer = admin.get("/api/audit", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_pages_of_fifty_newest_first_and_back(admin, trail):
    first = audit(admin)
    ids = [e["id"] for e in first["events"]]
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    assert first["newer"] is None and first["older"] == {"before": ids[-1]}

    second = audit(admin, **first["older"])  # page 2
    ids2 = [e["id"] for e in second["events"]]
    assert len(ids2) == 50 and ids2 == list(range(ids[-1] - 1, ids[-1] - 51, -1))  # no gap, no overlap
    assert second["newer"] == {"after": ids2[0]}
    assert [e["id"] for e in audit(admin, **second["newer"])["events"]] == ids  # back to page 1

    pages, page = [first, second], second
    while page["older"]:
        page = audit(admin, **page["older"])
        pages.append(page)
    everything = [e["id"] for p in pages for e in p["events"]]
    assert len(everything) == len(set(everything)) >= 120 + 3 + 2 and pages[-1]["older"] is None

    html = admin.get("/admin/audit", params=first["older"]).text
    assert f'href="/admin/audit?after={ids2[0]}"' in html and f'href="/admin/audit?before={ids2[-1]}"' in html
    assert html.count('data-label="When"') == 50


def test_filters_are_kept_across_pages(admin, trail):
    downloads = audit(admin, event="Export")
    assert [e["event"] for e in downloads["events"]] == ["Export"] * 4 and downloads["older"] is None
    assert [e["user_name"] for e in downloads["events"]] == ["admin"] + ["frontdesk"] * 3

    viewed = audit(admin, event="DICOMInstancesAccessed", user="admin", limit=40)
    assert len(viewed["events"]) == 40 and viewed["filter"] == {
        "event": "DICOMInstancesAccessed",
        "user": "admin",
        "failures": "",
    }
    filtered = {"event": "DICOMInstancesAccessed", "user": "admin"}
    html = unescape(admin.get("/admin/audit", params=filtered).text)
    older = re.search(r'id="older" rel="next" href="([^"]+)"', html).group(1)
    assert (
        older
        == f"/admin/audit?event=DICOMInstancesAccessed&user=admin&before={audit(admin, **filtered)['older']['before']}"
    )
    second = unescape(admin.get(older).text)
    assert second.count('data-label="Event">Study viewed') == second.count('data-label="When"') == 50
    assert 'id="newer"' in second and 'id="older"' in second  # 120 views: pages 1, 2 and 3
    assert 'value="DICOMInstancesAccessed" selected' in second and 'name="user" value="admin"' in second

    failures = audit(admin, failures="1")
    assert [(e["event"], e["outcome"], e["user_name"]) for e in failures["events"]] == [
        ("UserAuthentication", 4, "frontdesk")
    ] * 2
    assert audit(admin, user="nobody")["events"] == []
    assert "No events match these filters" in admin.get("/admin/audit", params={"user": "nobody"}).text


def test_events_name_their_study_by_patient_description_and_date(admin, trail):
    events = audit(admin, event="Export")["events"]
    assert events[0]["study_uid"] == "1.2.3.4.5" and events[0]["study"] is None
    assert events[1]["study"] == {"patient_name": "Doe^Jane^Q", "description": "Bitewings", "study_date": "20261123"}
    assert "a study no longer in the archive" in admin.get("/admin/audit", params={"event": "Export"}).text
    html = admin.get("/admin/audit", params={"event": "DICOMInstancesAccessed"}).text
    assert f'<a class="study-link" href="/studies/{trail["described"]}">Doe, Jane Q</a>' in html
    assert 'Bitewings · <span class="date">23 Nov 2026</span>' in html
    assert (
        f'href="/studies/{trail["bare"]}">Roe, Rick</a>\n<span class="study-about muted"><span class="date">23 Nov 2026</span>'
        in html
    )
    assert ">open<" not in html and "^" not in html
    assert "Study viewed" in html and "1 instance viewed" in html and "2 instances viewed" in html
    assert "study ZIP, 1 instance" in admin.get("/admin/audit", params={"event": "Export"}).text
    assert f'href="/studies/{trail["described"]}">Doe, Jane Q</a>' in admin.get("/admin").text  # recent changes too


def test_bad_queries_are_refused_and_the_trail_is_for_admins(admin, trail):
    for bad in (
        {"before": "yesterday"},
        {"event": "Coffee"},
        {"limit": "0"},
        {"limit": "100000"},
        {"before": "9", "after": "3"},
    ):
        assert admin.get("/api/audit", params=bad).status_code == 400, bad
    viewer = Client(admin.base)
    assert viewer.login("frontdesk", "front desk password").status_code == 303
    assert viewer.get("/api/audit").status_code == 403 and viewer.get("/admin/audit").status_code == 403
    assert Client(admin.base).get("/api/audit").status_code == 401
