"""Deleting and fixing identities from the web UI: the JSON routes (admin only, confirmed by
the Patient ID, audited) and the study page in Chromium at desktop and phone sizes."""

from __future__ import annotations

import pytest
from pydicom import dcmread

from support.browser import expect, log_in, new_page, shot
from support.dicomgen import make_study
from support.scu import rows
from support.web import ADMIN, ADMIN_PASSWORD, add_user, send_study


def test_only_admins_delete_and_only_with_the_patient_id(server, admin, tmp_path):
    study = send_study(server, tmp_path / "s", 2, patient_id="API-1", patient_name="Api^Anna")
    viewer = add_user(admin, "viewer1", "viewer password 1")
    assert viewer.api_post(f"/api/studies/{study}/delete", confirm="API-1").status_code == 403
    assert viewer.get(f"/api/studies/{study}/deletion").status_code == 403
    shown = admin.get(f"/api/studies/{study}/deletion").json()
    assert (shown["patient_name"], shown["confirmation"], shown["instances"]) == ("Api^Anna", "API-1", 2)
    wrong = admin.api_post(f"/api/studies/{study}/delete", confirm="API-2")
    assert wrong.status_code == 400 and "Patient ID" in wrong.json()["error"]
    done = admin.api_post(f"/api/studies/{study}/delete", confirm="API-1")
    assert done.status_code == 200 and done.json()["next"] == "/"
    assert admin.get(f"/api/studies/{study}").status_code == 404
    assert admin.api_post(f"/api/studies/{study}/delete", confirm="API-1").status_code == 404
    [event] = rows(
        server.data, "SELECT user_name, action, detail FROM auditevent WHERE study_uid = ? AND action = 'D'", study
    )
    assert event[0] == ADMIN and "Api^Anna" in event[2]


def test_edit_keeps_the_other_name_components_and_refuses_bad_dates(server, admin, tmp_path):
    study = send_study(server, tmp_path / "s", 1, patient_id="API-3", patient_name="Mueler^Hans^Peter^Dr")
    bad = admin.api_post(f"/api/studies/{study}/patient", birth_date="1970-13")
    assert bad.status_code == 400 and "birth date" in bad.json()["error"]
    ok = admin.api_post(f"/api/studies/{study}/patient", family="Müller", given="Hans", birth_date="1970-01-02")
    assert ok.status_code == 200 and ok.json() == {"studies": 1, "instances": 1}
    patient = admin.get(f"/api/studies/{study}").json()["study"]
    assert (patient["patient_name"], patient["birth_date"]) == ("Müller^Hans^Peter^Dr", "19700102")
    same = admin.api_post(f"/api/studies/{study}/patient", family="Müller")
    assert same.status_code == 400 and "nothing to change" in same.json()["error"]


@pytest.mark.slow
def test_study_page_fix_merge_and_delete_in_chromium(server, admin, browser, tmp_path):
    right = send_study(
        server, tmp_path / "right", 2, patient_id="WEB-7", patient_name="Doe^Jane", PatientBirthDate="19800101"
    )
    files = make_study(tmp_path / "typo", 3, patient_id="WEB-7", patient_name="Deo^Jnae", PatientBirthDate="19800101")
    more = make_study(tmp_path / "typo2", 2, patient_id="WEB-7", patient_name="Deo^Jnae", PatientBirthDate="19800101",
                      study_uid=str(dcmread(files[0]).StudyInstanceUID))  # fmt: skip
    assert server.storescu(*files, *more).returncode == 0
    typo = str(dcmread(files[0]).StudyInstanceUID)
    dialogs: list[str] = []
    page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))  # the merge's confirm
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.base = f"http://127.0.0.1:{server.http_port}"
    page.goto(page.base + "/login")
    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.goto(f"{page.base}/studies/{typo}")

    # The conflict names the other record; "Use this record" merges after a confirm naming both.
    others = page.locator(".manage .others li")
    expect(others).to_have_count(1)
    expect(others.first).to_contain_text("Doe, Jane")
    shot(page, "study-manage-conflict")
    page.click("button.merge-into")
    expect(page.locator("h1")).to_contain_text("Jane")
    expect(page.locator(".manage .others li")).to_have_count(0)
    assert rows(server.data, "SELECT COUNT(*) FROM patient WHERE patient_id = 'WEB-7'") == [(1,)]
    assert any("Merge Deo, Jnae" in m for m in dialogs) and not errors

    # Fix the patient's details of both studies at once.
    page.click(".manage details.fix summary")
    page.fill("#fix-family", "Doe-Smith")
    page.check("input[name=scope]")
    page.click(".manage details.fix button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Doe-Smith")
    assert rows(server.data, "SELECT name, num_studies FROM patient WHERE patient_id = 'WEB-7'") == [
        ("Doe-Smith^Jane", 2)
    ]
    assert admin.get(f"/api/studies/{right}").json()["study"]["patient_name"] == "Doe-Smith^Jane"

    # Delete one image, then a series, then the study: each dialog names the patient and
    # stays disabled until the Patient ID is typed.
    page.set_viewport_size({"width": 360, "height": 740})
    page.locator(".series-item details summary").first.click()
    page.locator("[data-sop-uid] button[data-delete]").first.click()
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_contain_text("Doe-Smith, Jane")
    expect(dialog).to_contain_text("Patient ID WEB-7")
    expect(dialog.locator("button[type=submit]")).to_be_disabled()
    page.fill("#delete-confirm", "WEB-")
    expect(dialog.locator("button[type=submit]")).to_be_disabled()
    page.fill("#delete-confirm", "WEB-7")
    shot(page, "study-delete-dialog-phone")
    with page.expect_navigation():  # the page reloads once the image is gone
        dialog.locator("button[type=submit]").click()
    assert admin.get(f"/api/studies/{typo}").json()["study"]["num_instances"] == 4
    page.locator(".series-item button[data-delete=series]").first.click()
    page.fill("#delete-confirm", "WEB-7")
    with page.expect_navigation():
        dialog.locator("button[type=submit]").click()
    expect(page.locator(".series-item")).to_have_count(1)
    page.click("button[data-delete=studies]")
    page.fill("#delete-confirm", "WEB-7")
    dialog.locator("button[type=submit]").click()
    page.wait_for_url(page.base + "/")
    assert admin.get(f"/api/studies/{typo}").status_code == 404
    events = rows(server.data, "SELECT event, action FROM auditevent WHERE study_uid = ? ORDER BY id", typo)
    assert ("PatientRecord", "U") in events and events.count(("DICOMInstancesAccessed", "D")) == 3
    assert not errors and len(dialogs) == 1, dialogs  # the merge's confirm, and no alert

    # A viewer sees no admin part.
    viewer_page = new_page(browser, server, [])
    viewer_page.goto(viewer_page.base + "/login")
    add_user(admin, "viewer2", "viewer password 2")
    log_in(viewer_page, "viewer2", "viewer password 2")
    viewer_page.goto(f"{viewer_page.base}/studies/{right}")
    expect(viewer_page.locator("h1")).to_contain_text("Doe-Smith")
    expect(viewer_page.locator("#manage")).to_have_count(0)
    expect(viewer_page.locator("button[data-delete]")).to_have_count(0)
