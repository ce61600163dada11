"""The pages staff see daily, in Chromium at desktop (1366x768) and phone (360x740) sizes:
nothing clipped or wider than the phone, the study list compact, names read "Family, Given",
dates readable on one line, counts in the singular when there is one, cine exports only for
multi-frame images, audit events naming their patient, a node added from the Devices page.

The Schedule page: an order made through its form, found by the patient already in the index.

Screenshots go to tests/artifacts/ (desktop-*.png, phone-*.png) for people to look at.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from pydicom.uid import generate_uid

from appliance.web import display
from support.browser import expect, log_in, new_page, shot
from support.dicomgen import make_dataset, write
from support.web import ADMIN, ADMIN_PASSWORD, add_user, first_admin, send_study

pytestmark = pytest.mark.slow  # Chromium at two sizes

DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 360, "height": 740}
NAMES = ["DOE^JOHN^PAUL^DR^JR", "Rex", "^John", "Smith^John", "=山田^太郎", "a^b^c^d^e^f", "", "Doe^^^Dr", " Doe ^ Jo "]
DATES = ["20261201", "19800101", "2026", "20261301", "", "2026-12-01"]
# Layout measures, computed in the page (the CSP forbids eval, not Playwright's own evaluate).
LINES = """e => { const r = document.createRange(); r.selectNodeContents(e);
  return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }"""
OVERFLOW = """() => [...document.querySelectorAll('.table-wrap, main')]
  .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.className || e.tagName)"""


@pytest.fixture(scope="module")
def clinic(server, tmp_path_factory) -> dict[str, str]:
    """A dental study of one image, a vet study without description or accession, an
    ultrasound study with a 10-frame loop and a single still, an NM study; users and nodes."""
    folder = tmp_path_factory.mktemp("studies")
    admin = first_admin(server)
    add_user(admin, "frontdesk", "front desk password")
    uids = {
        "dental": send_study(server, folder / "dental", count=1, patient_name="Doe^Jane^Q", patient_id="D-1",
                             modality="IO", StudyDescription="Bitewings", ReferringPhysicianName="Molar^Mia^^Dr"),
        "vet": send_study(server, folder / "vet", count=2, patient_name="Smith^Rex", patient_id="V-1", modality="CR",
                          StudyDescription="", AccessionNumber="", PatientSpeciesDescription="Canine",
                          PatientBreedDescription="Beagle", ResponsiblePerson="Smith^John", StudyDate="20261124"),
        "nm": send_study(server, folder / "nm", count=1, patient_name="Nuclear^Nina", patient_id="N-1", modality="NM",
                         StudyDescription="Bone scan", StudyDate="20261125"),
    }  # fmt: skip
    study, loop_series, still_series = generate_uid(), generate_uid(), generate_uid()
    loop = make_dataset(study_uid=study, series_uid=loop_series, modality="US", rows=48, columns=64, NumberOfFrames=10,
                        SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0, BitsAllocated=8,
                        BitsStored=8, HighBit=7, patient_name="Echo^Eve", patient_id="U-1", StudyDate="20261126",
                        StudyDescription="Heart", SeriesNumber=1)  # fmt: skip
    loop.PixelData = np.stack([np.full((48, 64, 3), (25 * i, 100, 200), np.uint8) for i in range(10)]).tobytes()
    still = make_dataset(study_uid=study, series_uid=still_series, modality="US", patient_name="Echo^Eve", patient_id="U-1",
                         StudyDate="20261126", StudyDescription="Heart", SeriesNumber=2)  # fmt: skip
    files = [write(loop, folder / "us" / "loop.dcm"), write(still, folder / "us" / "still.dcm")]
    assert server.storescu(*files).returncode == 0
    uids.update(us=study, loop=loop_series, still=still_series)
    assert admin.api_post("/api/nodes", aet="WS_READINGROOM1", name="Reading room workstation",
                          host="workstation-reading-room-1.clinic.example", port="11112").status_code == 200  # fmt: skip
    assert admin.api_post("/api/worklist", patient_name="Smith^Rex", patient_id="V-1", species="Canine",
                          responsible_person="Smith^John", modality="US", station_aet="US_EXAM_ROOM_2",
                          start_date=date.today().strftime("%Y%m%d"),
                          requested_procedure_description="Abdominal ultrasound, full").status_code == 201  # fmt: skip
    for uid in (uids["dental"], uids["vet"], uids["us"]):
        assert admin.get(f"/api/studies/{uid}").status_code == 200  # audit events that name studies
    return uids


@pytest.fixture(scope="module")
def pages(server, clinic, browser):
    """An admin logged in at each size."""
    dialogs: list[str] = []
    opened = {}
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = new_page(browser, server, dialogs, viewport=viewport, is_mobile=size == "phone")
        page.goto(page.base + "/login")
        log_in(page, ADMIN, ADMIN_PASSWORD)
        page.wait_for_url(page.base + "/")
        opened[size] = page
    yield opened
    assert dialogs == []


def visit(page, path: str, name: str) -> None:
    page.goto(page.base + path)
    page.wait_for_load_state("networkidle")
    shot(page, name)


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_no_page_is_clipped_or_wider_than_the_screen(pages, size):
    page = pages[size]
    width = (DESKTOP if size == "desktop" else PHONE)["width"]
    for path, name in (
        ("/", "studies"),
        ("/schedule", "schedule"),
        ("/admin/audit", "audit"),
        ("/admin/devices", "devices"),
        ("/admin", "admin"),
    ):
        visit(page, path, f"{size}-{name}")
        assert page.evaluate("document.documentElement.scrollWidth") <= width, path
        assert page.evaluate(OVERFLOW) == [], path  # no table scrolls sideways, none is cut off
    users = page.locator("table.users")  # the admin page's, with its password forms
    assert (
        users.evaluate("t => [t.closest('.table-wrap').scrollWidth, t.closest('.table-wrap').clientWidth]")[0] <= width
    )
    assert users.evaluate("t => t.closest('.table-wrap').scrollWidth <= t.closest('.table-wrap').clientWidth")
    assert page.locator("table.users tbody tr").count() == 2


def test_the_study_list_on_a_phone_is_compact_and_hides_empty_fields(pages, clinic):
    page = pages["phone"]
    visit(page, "/", "phone-studies")
    rows = page.locator("#studies tbody tr")
    expect(rows).to_have_count(4)
    heights = [rows.nth(n).bounding_box()["height"] for n in range(4)]
    assert max(heights) < PHONE["height"] / 4, heights  # four studies or more per screen, not two
    vet = page.locator("#studies tbody tr", has_text="Smith, Rex")
    for label in ("Description", "Accession"):
        assert vet.locator(f"td[data-label={label}]").evaluate("td => getComputedStyle(td).display") == "none"
    assert "Canine · Beagle · owner Smith, John" in vet.inner_text()
    for cell in page.locator("td.date").all():
        assert cell.evaluate(LINES) <= 1, cell.inner_text()  # a date never wraps
    # New rows (search as you type) are built by studies.js the same way.
    page.fill("#q", "smith joh")
    expect(rows).to_have_count(1)
    assert vet.locator("td[data-label=Description]").evaluate("td => getComputedStyle(td).display") == "none"
    assert rows.first.bounding_box()["height"] < PHONE["height"] / 4
    shot(page, "phone-studies-search")


def test_search_by_owner_and_a_modality_the_archive_holds(pages, clinic):
    page = pages["desktop"]
    visit(page, "/", "desktop-studies")
    rows = page.locator("#studies tbody tr")
    expect(rows).to_have_count(4)
    page.fill("#q", "smith john")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Smith, Rex")
    page.fill("#q", "")
    expect(rows).to_have_count(4)
    assert page.locator("#modality option").all_inner_texts() == ["Any", "CR", "IO", "NM", "US"]
    page.select_option("#modality", "NM")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Nuclear, Nina")
    expect(page.locator("#status")).to_have_text("1 study shown · 4 in the archive")
    page.select_option("#modality", "")


def test_names_dates_and_counts_read_as_people_write_them(pages, clinic):
    page = pages["desktop"]
    visit(page, "/", "desktop-studies")
    text = page.inner_text("main")
    assert "^" not in text and "1 images" not in text and "4 studies shown" in text
    row = page.locator("#studies tbody tr", has_text="Doe, Jane Q")
    assert row.locator("td.count").inner_text() == "1 image"
    assert row.locator("td.when").inner_text() == "23 Nov 2026" and row.locator("td.born").inner_text() == "1 Jan 1980"
    assert (
        page.locator("#studies tbody tr", has_text="Echo, Eve").locator("td.count").inner_text()
        == "2 images in 2 series"
    )

    visit(page, f"/studies/{clinic['vet']}", "desktop-study-vet")
    assert page.inner_text("h1 .sub") == "24 Nov 2026"  # no description: no "Study ·"
    details = page.inner_text(".details")
    assert "Owner\tSmith, John" in details.replace("\n", "\t") and "2 images in 1 series" in details
    visit(page, f"/studies/{clinic['dental']}", "desktop-study-dental")
    assert page.inner_text("h1 .sub") == "Bitewings · 23 Nov 2026"
    assert "Molar, Dr Mia" in page.inner_text(".details") and "1 image" in page.inner_text(".series")
    assert "^" not in page.inner_text("main")

    # The rows studies.js builds and the viewer's overlay format as the server does.
    assert page.evaluate("names => names.map(lightbox.person)", NAMES) == [display.person(n) for n in NAMES]
    assert page.evaluate("dates => dates.map(lightbox.date)", DATES) == [display.dicom_date(d) for d in DATES]
    assert page.evaluate(
        "[0, 1, 2].map(n => lightbox.plural(n, 'series', 'series') + lightbox.plural(n, 'image'))"
    ) == [display.plural(n, "series", "series") + display.plural(n, "image") for n in (0, 1, 2)]


def test_cine_exports_are_offered_for_multi_frame_images_only(pages, clinic):
    page = pages["desktop"]
    visit(page, f"/studies/{clinic['us']}", "desktop-study-us")
    page.click(f"a.view[data-series-uid='{clinic['still']}']")  # the viewer page
    expect(page.locator("#viewer .lbv-frame")).to_have_text("1 / 1")
    expect(page.locator("#viewer .lbv-export-png")).to_be_visible()
    expect(page.locator("#viewer .lbv-export-gif")).to_be_hidden()
    expect(page.locator("#viewer .lbv-export-webp")).to_be_hidden()
    expect(page.locator("#viewer .lbv-tl")).to_contain_text("Echo, Eve")
    page.click(f".ws-strip .ws-series[data-series-uid='{clinic['loop']}']")  # the strip: into the same viewport
    expect(page.locator("#viewer .lbv-frame")).to_have_text("1 / 10")
    expect(page.locator("#viewer .lbv-export-gif")).to_be_visible()
    expect(page.locator("#viewer .lbv-export-webp")).to_be_visible()
    shot(page, "desktop-study-cine")


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_audit_events_name_the_patient_and_study(pages, clinic, size):
    page = pages[size]
    visit(page, "/admin/audit", f"{size}-audit")
    trail = page.locator("table.audit")
    link = trail.locator(f"a[href='/studies/{clinic['dental']}']").first
    expect(link).to_have_text("Doe, Jane Q")
    assert "Bitewings · 23 Nov 2026" in trail.inner_text() and "^" not in trail.inner_text()
    assert trail.get_by_role("link", name="open", exact=True).count() == 0
    for cell in page.locator("td.when").all():
        assert cell.evaluate(LINES) == 1


def test_an_admin_adds_a_node_from_the_devices_page(server, pages, clinic):
    page = pages["desktop"]
    visit(page, "/admin/devices", "desktop-devices")
    page.fill("#new-node-aet", "PACS_MAIN")
    page.fill("#new-node-name", "Hospital PACS")
    page.fill("#new-node-host", "10.1.2.3")
    page.fill("#new-node-port", "104")
    for op in ("find", "move", "get", "commit"):  # it only receives studies
        page.locator("#new-node-aet").locator("xpath=ancestor::form").locator(f"input[value={op}]").uncheck()
    page.click("button:text-is('Add node')")
    row = page.locator("table.nodes tr[data-aet=PACS_MAIN]")
    expect(row).to_contain_text("10.1.2.3:104")
    expect(row.locator("td[data-label=May]")).to_have_text("receive studies")
    assert "PACS_MAIN host=10.1.2.3 port=104 name='Hospital PACS' allow=store" in server.cli("node", "list").stdout
    shot(page, "desktop-devices-node-added")
    page.click("button:text-is('Add node')")  # the browser asks for the required fields first
    assert page.locator("#new-node-aet:invalid").count() == 1


def test_schedule_an_order_for_a_patient_of_the_index(pages, clinic):
    page = pages["desktop"]
    visit(page, "/schedule", "desktop-schedule")
    page.fill("input[name=patient]", "nuclear")
    page.click("form[role=search] button")
    page.click("#patients a", timeout=5000)
    expect(page.locator("#order-form input[name=patient_id]")).to_have_value("N-1")
    page.fill("#order-form input[name=requested_procedure_description]", "Bone scan, follow-up")
    page.fill("#order-form input[name=modality]", "NM")
    page.fill("#order-form input[name=start_time]", "15:30")
    page.click("#order-form button[type=submit]")
    row = page.locator("#worklist tbody tr", has_text="Nuclear, Nina")
    expect(row).to_contain_text("Bone scan, follow-up")
    expect(row).to_contain_text("15:30")
    shot(page, "desktop-schedule-made")
