"""The study's report in Chromium against `lightbox serve`: written on the study page, saved as a
draft, seen again after a reload, finalised (then read-only: only Amend changes it), amended, its
history shown; a second editor's stale save refused on the page; the print page's PDF read back
by poppler's pdftotext; the stored SR read by DCMTK's dsrdump and retrieved by getscu (C-GET)
byte for byte as stored (bit-preserving: the meta header is getscu's own)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pydicom
import pytest

from support.browser import expect, log_in, new_page, shot
from support.dicomgen import dataset_bytes, make_study
from support.qr import add_node, findscu
from support.scu import rows
from support.tools import dcmtk, require
from support.web import VIEWER, VIEWER_PASSWORD

pytestmark = pytest.mark.slow  # Chromium, DCMTK

CLINIC = "Riverside Veterinary Clinic"
FIRST = "Thorax: heart size normal.\nLungs clear. Café au lait spot, Größe 3 cm."
AMENDED = FIRST + "\nAddendum: left kidney small (認められる)."


@pytest.fixture(scope="module")
def study(server: Any, admin: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    files = make_study(tmp_path_factory.mktemp("study"), 2, patient_name="Rex^Dog", patient_id="VET-7",
                       PatientSpeciesDescription="Canine", PatientBreedDescription="Beagle",
                       ResponsiblePerson="Smith^Anna", StudyDescription="Thorax", AccessionNumber="ACC-42")  # fmt: skip
    result = server.storescu(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert admin.api_post("/api/site", clinic_name=CLINIC).status_code == 200
    return str(pydicom.dcmread(files[0]).StudyInstanceUID)


def logged_in(browser: Any, server: Any, errors: list[str]) -> Any:
    page = new_page(browser, server, [], viewport={"width": 1200, "height": 900})
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page.base + "/login")
    log_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_url(page.base + "/")
    return page


def leaving_asks_first(page: Any) -> bool:
    """Would the browser ask before leaving the page (its beforeunload event cancelled)?"""
    return page.evaluate("""() => { const e = new Event("beforeunload", { cancelable: true });
        window.dispatchEvent(e); return e.defaultPrevented; }""")


def test_report_written_finalised_amended_printed(server: Any, viewer: Any, browser: Any, study: str,
                                                  tmp_path: Path) -> None:  # fmt: skip
    errors: list[str] = []
    page = logged_in(browser, server, errors)
    page.goto(f"{page.base}/studies/{study}")
    report = page.locator("#report")
    expect(report.locator(".rp-status")).to_have_text("No report yet.")
    head = report.locator(".rp-head").inner_text()
    for expected in (CLINIC, "Rex, Dog", "Canine", "Beagle", "Owner: Smith, Anna", "Thorax", "ACC-42", VIEWER):
        assert expected in head, (expected, head)

    # A draft, saved and seen again after a reload.
    page.fill("#report-text", FIRST)
    page.click(".rp-save")
    expect(report.locator(".rp-status")).to_contain_text("Draft, saved by " + VIEWER)
    assert page.get_attribute("#study", "data-images") == "3"  # the report counted: no "new images arrived"
    page.reload()
    expect(report.locator(".rp-status")).to_contain_text("Draft, saved by")
    assert page.input_value("#report-text") == FIRST

    # Another editor opened the page before the next save: their save is refused on the page.
    other = logged_in(browser, server, errors)
    other.goto(f"{other.base}/studies/{study}")
    expect(other.locator(".rp-status")).to_contain_text("Draft")
    page.fill("#report-text", FIRST + " ")
    page.click(".rp-finalise")
    expect(report.locator(".rp-status")).to_contain_text("Final, signed by " + VIEWER)
    other.fill("#report-text", "Overwritten?")
    other.click(".rp-save")
    expect(other.locator(".rp-error")).to_contain_text("since you opened it; copy your text, reload")
    assert other.input_value("#report-text") == "Overwritten?"  # the text is still there to copy
    other.context.close()

    # Final: read-only; only Amend opens the editor again.
    expect(report.locator("#report-text")).to_be_hidden()
    expect(report.locator(".rp-save")).to_be_hidden()
    expect(report.locator(".rp-text")).to_have_text(FIRST)
    page.click(".rp-amend")
    expect(report.locator("#report-text")).to_be_visible()
    page.fill("#report-text", AMENDED)
    assert leaving_asks_first(page)  # unsaved text
    page.click(".rp-finalise")
    expect(report.locator(".rp-status")).to_contain_text("Final (amended), signed by " + VIEWER)
    assert not leaving_asks_first(page)
    page.reload()
    expect(report.locator(".rp-text")).to_have_text(AMENDED)
    history = report.locator(".rp-history li")
    expect(history).to_have_count(2)
    page.click(".rp-history summary")
    shot(page, "report-amended")
    assert "Version 3: Final (amended)" in history.nth(0).inner_text()
    assert "Version 2: Final, signed by" in history.nth(1).inner_text()

    # The print page, as a PDF.
    with page.context.expect_page() as opened:
        page.click(".rp-print")
    printed = opened.value
    printed.wait_for_load_state()
    printed.emulate_media(media="print")
    shot(printed, "report-print")
    expect(printed.locator(".rp-bar")).to_be_hidden()
    pdf = tmp_path / "report.pdf"
    printed.pdf(path=str(pdf), prefer_css_page_size=True)
    info = subprocess.run([require("/usr/bin/pdfinfo"), pdf], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Pages:\s+1$.*^Page size:.*\(A4\)$", info, re.M | re.S), info
    text = subprocess.run([require("/usr/bin/pdftotext"), pdf, "-"], capture_output=True, text=True, check=True).stdout
    for expected in (CLINIC, "Rex, Dog", "Owner: Smith, Anna", "ACC-42", "Final report, amended", "Amended: this report",
                     "Lungs clear. Café au lait spot, Größe 3 cm.", "left kidney small (",
                     f"Signed by {VIEWER}"):  # fmt: skip
        assert expected in text, (expected, text)
    # The page holds the Japanese whole; pdftotext maps the fallback font's kanji glyph to no
    # character (it reads "( められる)"), so the PDF is held to the kana.
    assert "められる)" in text and "(認められる)" in printed.inner_text(".rp-text")
    assert errors == []
    # The earlier final, printed, says it is not the current one.
    earlier = history.nth(1).get_attribute("data-sop-uid")
    answer = viewer.get(f"/studies/{study}/report/print?version={earlier}")
    assert answer.status_code == 200 and "is not the current version" in answer.text
    assert viewer.get(f"/studies/{study}/report/print?version=1.2.3").status_code == 404
    page.context.close()


def test_report_read_by_dcmtk_and_retrieved_byte_identical(server: Any, viewer: Any, study: str,
                                                           tmp_path: Path) -> None:  # fmt: skip
    current = viewer.get(f"/api/studies/{study}/report").json()["current"]
    if current is None:  # run alone: a final report, amended
        for text, base in ((FIRST, ""), (AMENDED, None)):
            body = {
                "text": text,
                "base": base if base is not None else current["sop_uid"],
                "final": True,
                "amend": True,
            }
            current = viewer.post(f"/api/studies/{study}/report", json=body,
                                  headers={"X-CSRF-Token": viewer.csrf()}).json()["current"]  # fmt: skip
    (key,) = rows(server.data, "SELECT file_key FROM instance WHERE sop_uid = ?", current["sop_uid"])[0]
    path = server.data / "storage" / key
    dump = subprocess.run([dcmtk("dsrdump"), "+U8", "+Pl", "+Pc", str(path)], capture_output=True, timeout=60)
    out = dump.stdout.decode("utf-8")
    # Its one warning: DCMTK's VR checker does not check UTF-8 text (the report holds Japanese).
    warnings = [line for line in dump.stderr.decode().splitlines() if "VR checker does not support" not in line]
    assert dump.returncode == 0 and not warnings, out + dump.stderr.decode()
    for expected in ("Basic Text SR Document", "Completion Flag     : COMPLETE", "Verification Flag   : VERIFIED",
                     f"{VIEWER}, {CLINIC}", "Predecessor Docs    : 1",
                     '<CONTAINER:(18748-4,LN,"Diagnostic imaging report")=SEPARATE>',
                     f'<has obs context PNAME:(121008,DCM,"Person Observer Name")="{VIEWER}">',
                     '<contains TEXT:(121070,DCM,"Findings")="Thorax', "left kidney small (認められる)"):  # fmt: skip
        assert expected in out, (expected, out)

    add_node(server, "GETSCU", 1, "get")
    got = tmp_path / "got"
    got.mkdir()
    result = subprocess.run(
        [dcmtk("getscu"), "+B", "+xe", "-aet", "GETSCU", "-aec", server.aet, "-od", str(got), "-k", "QueryRetrieveLevel=IMAGE",
         "-k", f"StudyInstanceUID={study}", "-k", f"SeriesInstanceUID={pydicom.dcmread(path).SeriesInstanceUID}",
         "-k", f"SOPInstanceUID={current['sop_uid']}", "127.0.0.1", str(server.dicom_port)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (received,) = list(got.iterdir())
    assert dataset_bytes(received) == dataset_bytes(path)
    # Found by C-FIND, as any instance.
    add_node(server, "FINDSCU", 1, "find")
    found = findscu(server, tmp_path / "found", "-S", "QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={study}",
                    f"SeriesInstanceUID={pydicom.dcmread(path).SeriesInstanceUID}", "SOPInstanceUID", "SOPClassUID")  # fmt: skip
    assert [(f.SOPInstanceUID, f.SOPClassUID) for f in found if f.SOPInstanceUID == current["sop_uid"]] == [
        (current["sop_uid"], "1.2.840.10008.5.1.4.1.1.88.11")]  # fmt: skip
