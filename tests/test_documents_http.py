"""PDF and CDA documents and structured reports over HTTP: made by DCMTK (pdf2dcm, cda2dcm; the
report is DCMTK's own test document), sent by storescu, read back through `lightbox serve`
and compared with the originals and with DCMTK's dcm2pdf and dsr2html."""

from __future__ import annotations

import html.parser
import re
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom import dcmread

from appliance.web.display import dicom_date
from support.dicomgen import make_study
from support.mediagen import odd_pdf, pdf_dicom, sr_dicom
from support.tools import dcmtk
from support.web import Client

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'
SR_LABELS = {"Observation Context", "Concept Modifier", "Properties", "Inferred from", "Acquisition Context",
             "Selected from"}  # fmt: skip
DSR2HTML_MARKS = re.compile(r"Annex|Footnote \d+|\d+|by-reference|Content Item")
CDA = (b'<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3"><title>Referral</title>'
       b"<component><structuredBody><component><section><text>Lightbox referral</text></section></component>"
       b"</structuredBody></component></ClinicalDocument>\n")  # fmt: skip


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"dicom_workers": 0}


@pytest.fixture(scope="module")
def study(server, tmp_path_factory) -> dict[str, object]:
    """One study: an image, a PDF (odd length), a CDA document and a structured report."""
    folder = tmp_path_factory.mktemp("study")
    image = make_study(folder / "image", 1, patient_name="Paper^Pia", patient_id="DOC-1")[0]
    study_uid = str(dcmread(image, stop_before_pixels=True).StudyInstanceUID)
    pdf = folder / "letter.pdf"
    pdf_bytes = odd_pdf(pdf)
    pdf_file = pdf_dicom(pdf, folder / "pdf.dcm", study_from=image)
    (folder / "referral.xml").write_bytes(CDA)
    cda_file = folder / "cda.dcm"
    subprocess.run([dcmtk("cda2dcm"), "+st", str(image), "+t", "Referral", str(folder / "referral.xml"), str(cda_file)],
                   check=True, timeout=60)  # fmt: skip
    sr_file = sr_dicom(folder / "sr.dcm", study_uid, patient_id="DOC-1", patient_name="Paper^Pia", text=HOSTILE)
    result = server.storescu(image, pdf_file, cda_file, sr_file, extra=("-R",))
    assert result.returncode == 0 and result.stderr.count("Received Store Response (Success)") == 4, result.stderr
    sop = lambda path: str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)  # noqa: E731
    return {"uid": study_uid, "pdf": sop(pdf_file), "pdf_bytes": pdf_bytes, "pdf_file": pdf_file, "cda": sop(cda_file),
            "sr": sop(sr_file), "sr_file": sr_file, "folder": folder}  # fmt: skip


def test_pdf_is_served_as_the_original_bytes(admin, study, tmp_path):
    url = f"/api/instances/{study['pdf']}/document"
    answer = admin.get(url)
    assert answer.status_code == 200
    assert answer.content == study["pdf_bytes"]  # odd length: DICOM's padding byte is not sent
    extracted = tmp_path / "dcm2pdf.pdf"
    subprocess.run([dcmtk("dcm2pdf"), str(study["pdf_file"]), str(extracted)], check=True, timeout=60)
    assert answer.content == extracted.read_bytes()
    assert answer.headers["Content-Type"] == "application/pdf"
    assert answer.headers["Content-Disposition"] == 'inline; filename="document-1.pdf"'
    assert answer.headers["Content-Security-Policy"].startswith("sandbox")
    # Pages of this origin may embed it (OHIF's PDF viewport is an <object>), no other site.
    assert "frame-ancestors 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    tail = admin.get(url, headers={"Range": "bytes=-64"})
    assert tail.status_code == 206 and tail.content == study["pdf_bytes"][-64:]
    download = admin.get(url + "?download=1")
    assert download.headers["Content-Disposition"] == 'attachment; filename="document-1.pdf"'
    assert Client(admin.base).get(url).status_code == 401
    details = [e["detail"] for e in admin.get("/api/audit").json()["events"] if e["study_uid"] == study["uid"]]
    assert "PDF document opened (instance 1)" in details and "PDF document downloaded (instance 1)" in details


def test_pdf_without_its_length_attribute_loses_only_the_padding(server, admin, study, tmp_path):
    """Encapsulated Document Length is Type 1 only since 2017: without it, the padding is
    recognised as DCMTK does (a PDF ends with %%EOF and maybe a line break)."""
    ds = dcmread(study["pdf_file"])
    del ds.EncapsulatedDocumentLength
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "old.dcm")
    assert server.storescu(tmp_path / "old.dcm", extra=("-R",)).returncode == 0
    assert admin.get(f"/api/instances/{ds.SOPInstanceUID}/document").content == study["pdf_bytes"]


def test_cda_is_a_download_never_shown_inline(admin, study):
    answer = admin.get(f"/api/instances/{study['cda']}/document")
    assert answer.status_code == 200 and answer.content == CDA
    assert answer.headers["Content-Type"] == "text/xml"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="document-1.xml"'


class _Text(html.parser.HTMLParser):
    """The text of an HTML page: each text node, and whether it sat inside a link."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[tuple[str, bool]] = []
        self._links = 0

    def handle_starttag(self, tag, attrs):
        self._links += tag == "a"

    def handle_endtag(self, tag):
        self._links -= tag == "a"

    def handle_data(self, data):
        if data.strip():
            self.nodes.append((data.strip(), self._links > 0))


def text_of(page: str) -> list[tuple[str, bool]]:
    parser = _Text()
    parser.feed(page)
    return parser.nodes


def dsr2html_values(sr_file: Path) -> list[str]:
    """What DCMTK's renderer shows of the report's content: concept names and values, without
    its own words (annex and footnote marks, relationship labels, links to its CGI)."""
    rendered = subprocess.run([dcmtk("dsr2html"), "+U8", "-Ri", str(sr_file)], capture_output=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    body = rendered.stdout.decode("utf-8").split("<hr>", 1)[1].rsplit("<hr>", 1)[0]
    values = []
    for text, in_link in text_of(body):
        text = text.strip(" :[]=()")
        if in_link or not text or text in SR_LABELS or DSR2HTML_MARKS.fullmatch(text):
            continue
        values.append(text.removeprefix("observed: "))  # "(observed: 2001-02-13 18:47:46)"
    return values


def as_shown(value: str) -> str:
    """dsr2html's ISO dates (2001-02-13) as the web UI writes every date (13 Feb 2001)."""
    return re.sub(r"\b(\d{4})-(\d{2})-(\d{2})\b", lambda m: dicom_date("".join(m.groups())), value)


def test_report_reads_as_dsr2html_renders_it(admin, study):
    page = admin.get(f"/instances/{study['sr']}/report")
    assert page.status_code == 200
    ours = " ".join(text for text, _ in text_of(page.text))
    ours = re.sub(r"\s+", " ", ours)
    expected = [as_shown(value) for value in dsr2html_values(study["sr_file"])]
    assert len(expected) > 30
    missing = [value for value in expected if re.sub(r"\s+", " ", value) not in ours]
    assert not missing, f"dsr2html shows these, the report page does not: {missing}"
    for header in (
        "Diagnosis",
        "Comprehensive SR",
        "COMPLETE (This document is completed!)",
        "VERIFIED",
        "Riesmeier, Jörg, OFFIS e.V., 2001-02-13 18:47:46",
        "Paper, Pia (DOC-1)",
    ):  # fmt: skip (names as the UI writes them)
        assert as_shown(header) in ours, header


def test_report_escapes_what_it_shows(admin, study):
    page = admin.get(f"/instances/{study['sr']}/report").text
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_report_json_twin_is_the_content_tree(admin, study):
    report = admin.get(f"/api/instances/{study['sr']}/report").json()
    assert report["title"] == "Diagnosis"
    assert (report["document_type"], report["verification"]) == ("Comprehensive SR", "VERIFIED")
    findings = report["root"]["children"][1]["children"]
    assert findings[0]["value"] == HOSTILE
    number = findings[1]
    assert (number["value_type"], number["name"], number["value"], number["unit"]) == ("NUM", "Diameter", "3", "cm")
    assert report["verifying_observers"][0]["name"] == "Riesmeier^Jörg"
    assert admin.get(f"/api/instances/{study['pdf']}/report").status_code == 404  # a PDF is no report


def test_study_page_shows_each_for_what_it_is(admin, study):
    detail = admin.get(f"/api/studies/{study['uid']}").json()
    by_kind = {s["kind"]: s for s in detail["series"]}
    assert set(by_kind) == {"image", "pdf", "document", "report"}
    assert by_kind["image"]["summary"] == "1 image"
    assert by_kind["pdf"]["summary"] == "PDF document"
    assert by_kind["document"]["summary"] == "CDA document"
    assert by_kind["report"]["summary"] == "Structured report"
    document = by_kind["pdf"]["instances"][0]["document"]
    assert document == {"label": "PDF document", "title": "Discharge letter", "inline": True, "readable": True}
    page = admin.get(f"/studies/{study['uid']}").text
    assert f'href="/api/instances/{study["pdf"]}/document" target="_blank"' in page
    assert f'href="/instances/{study["sr"]}/report"' in page
    assert "/static/icon-pdf.svg" in page and "/static/icon-report.svg" in page
    assert "no pixel data" not in page and "1 images" not in page
