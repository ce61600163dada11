"""Share links over HTTP against `lightbox serve` (studies sent by DCMTK storescu): a link opens
one study read-only and nothing else, revoked links are refused, PINs are limited per link and
per address, de-identified links and "Download anonymised" follow PS3.15 Annex E (checked with
pydicom, attribute by attribute), and every use is audited with the address."""

from __future__ import annotations

import http.client
import io
import os
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from pydicom import Dataset, dcmread
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, UltrasoundImageStorage, generate_uid

from support.dicomgen import make_dataset, write
from support.web import VIEWER, Client, base_url

NAME, PATIENT_ID, BIRTH = "Sharewell^Bella", "SHR-4711", "19790314"
SECRET_TEXTS = (b"Sharewell", b"SHR-4711", b"19790314", b"Riverside Clinic", b"Dr^Referrer")


@pytest.fixture(scope="module")
def study(server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A CT series of two slices that reference each other, an ultrasound image with a private
    tag and burned-in text, and another patient's study."""
    folder = tmp_path_factory.mktemp("share")
    uids = {k: generate_uid() for k in ("study", "ct", "us", "for", "other_study", "other_series")}
    common = dict(study_uid=uids["study"], patient_id=PATIENT_ID, patient_name=NAME, birth_date=BIRTH,
                  InstitutionName="Riverside Clinic", ReferringPhysicianName="Dr^Referrer",
                  StudyDescription="Knee", StudyDate="20261123", SeriesDate="20261123")  # fmt: skip
    ct = dict(series_uid=uids["ct"], modality="CT", SOPClassUID=CTImageStorage, FrameOfReferenceUID=uids["for"])
    first = make_dataset(instance_number=1, **ct, **common)  # type: ignore[arg-type]
    second = make_dataset(instance_number=2, **ct, **common)  # type: ignore[arg-type]
    for tag, vr, value in ((0x60000010, "US", 16), (0x60000011, "US", 16), (0x60000040, "CS", "G"),
                           (0x60000050, "SS", [1, 1]), (0x60000100, "US", 1), (0x60000102, "US", 0),
                           (0x60003000, "OW", b"\xff" * 32)):  # fmt: skip
        for ds in (first, second):
            ds.add_new(tag, vr, value)  # an overlay plane (it could spell a name)
    reference = Dataset()
    reference.ReferencedSOPClassUID = first.SOPClassUID
    reference.ReferencedSOPInstanceUID = first.SOPInstanceUID
    second.SourceImageSequence = Sequence([reference])
    us = make_dataset(series_uid=uids["us"], modality="US", SOPClassUID=UltrasoundImageStorage, **common)
    us.NamesOfIntendedRecipientsOfResults = "Dr^Referrer"  # a name Table E.1-1 does not list: emptied too
    us.add_new(0x00090010, "LO", "ACME")
    us.add_new(0x00091001, "LO", NAME)  # a private tag that names the patient
    us.add_new(0x7FE10010, "LO", "ACME")
    us.add_new(0x7FE11001, "OB", NAME.encode())  # and one after the pixel data
    other = make_dataset(study_uid=uids["other_study"], series_uid=uids["other_series"], patient_name="Other^Pat")
    files = [write(ds, folder / f"{i}.dcm") for i, ds in enumerate((first, second, us, other))]
    result = server.storescu(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    return {**uids, "sops": [str(ds.SOPInstanceUID) for ds in (first, second, us)],
            "other_sop": str(other.SOPInstanceUID), "originals": {str(ds.SOPInstanceUID): ds for ds in (first, second, us)}}  # fmt: skip


def make_link(client: Client, study_uid: str, **form: str) -> tuple[str, dict[str, Any]]:
    answer = client.api_post(f"/api/studies/{study_uid}/shares", **form)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return body["url"].rpartition("/share/")[2], body["share"]


def opened(server: Any, token: str) -> Client:
    """A fresh client (no account) that opened the link."""
    stranger = Client(base_url(server))
    answer = stranger.get(f"/share/{token}")
    assert answer.status_code == 200, answer.text
    return stranger


def post_pin(server: Any, token: str, pin: str, source: str) -> tuple[int, str, str]:
    """POST a PIN from ``source`` (an address of 127.0.0.0/8): status, body, Set-Cookie."""
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30, source_address=(source, 0))
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": base_url(server)}
        connection.request("POST", f"/share/{token}", urlencode({"pin": pin}), headers)
        answer = connection.getresponse()
        return answer.status, answer.read().decode(), answer.getheader("Set-Cookie") or ""
    finally:
        connection.close()


def test_share_link_opens_one_study_read_only(server: Any, viewer: Client, admin: Client, study: dict) -> None:
    token, share = make_link(viewer, study["study"])
    assert len(token) >= 43 and share["state"] == "active" and share["created_by"] == VIEWER
    assert NAME.split("^")[0] not in token and study["study"] not in token
    stranger = opened(server, token)
    page = stranger.get(f"/share/{token}").text
    assert "Sharewell" in page and "/share/" + token + "/view" in page
    # The study's resources: yes
    assert stranger.get(f"/api/series/{study['ct']}/thumbnail").status_code == 200
    assert stranger.get(f"/api/series/{study['ct']}/viewer").status_code == 200
    assert stranger.get(f"/api/instances/{study['sops'][0]}/frames/1/raw").status_code == 200
    assert stranger.get(f"/share/{token}/view").status_code == 200
    ziped = stranger.get(f"/share/{token}/study.zip")
    assert ziped.status_code == 200 and len(zipfile.ZipFile(io.BytesIO(ziped.content)).namelist()) == 4  # + DICOMDIR
    # Another study's, through the same cookie: no
    assert stranger.get(f"/api/series/{study['other_series']}/thumbnail").status_code == 404
    assert stranger.get(f"/api/instances/{study['other_sop']}/frames/1/rendered").status_code == 404
    assert stranger.get(f"/api/studies/{study['other_study']}/archive.zip").status_code == 404
    # The rest of the archive: no
    for path in ("/api/studies", f"/api/studies/{study['study']}", "/api/audit", "/api/users", "/api/me"):
        assert stranger.get(path).status_code == 401, path
    for path in ("/", f"/studies/{study['study']}", "/admin"):
        answer = stranger.get(path)
        assert answer.status_code == 303 and answer.headers["Location"].startswith("/login"), path
    # Writes: no (a revoke of its own link, too)
    assert stranger.post(f"/api/shares/{share['id']}/revoke").status_code in (401, 403)
    assert stranger.post(f"/api/studies/{study['study']}/shares").status_code in (401, 403)
    # Revoked: refused, the cookie with it
    answer = viewer.api_post(f"/api/shares/{share['id']}/revoke")
    assert answer.status_code == 200 and answer.json()["share"]["state"] == "revoked"
    assert stranger.get(f"/share/{token}").status_code == 410
    assert stranger.get(f"/api/series/{study['ct']}/thumbnail").status_code == 401
    assert stranger.get(f"/share/{token}/study.zip").status_code == 410
    assert Client(base_url(server)).get("/share/" + "x" * 43).status_code == 404
    # Audited, with the address
    events = admin.get("/api/audit", params={"limit": 50}).json()["events"]
    details = [(e["user_name"], e["detail"], e["address"]) for e in events if e["study_uid"] == study["study"]]
    assert (VIEWER, f"share link #{share['id']} revoked", "127.0.0.1") in details
    assert (f"share link #{share['id']}", "share link opened", "127.0.0.1") in details
    assert any(d.startswith("share link download: ZIP") for _, d, _ in details)
    assert any(d == "share link refused: revoked" for _, d, _ in details)
    log = server.log()
    assert token not in log and "Sharewell" not in log and PATIENT_ID not in log  # nor in the log


def test_share_pin_is_limited_per_address_and_per_link(server: Any, viewer: Client, study: dict) -> None:
    token, share = make_link(viewer, study["study"], pin="2468")
    stranger = Client(base_url(server))
    form = stranger.get(f"/share/{token}")
    assert form.status_code == 200 and 'name="pin"' in form.text and "Sharewell" not in form.text
    assert stranger.get(f"/share/{token}/view").status_code == 303  # back to the PIN
    statuses = [post_pin(server, token, "1111", "127.0.0.2")[0] for _ in range(5)]
    assert statuses[:3] == [403, 403, 403] and statuses[3:] == [429, 429], statuses
    status, _, _ = post_pin(server, token, "2468", "127.0.0.2")
    assert status == 429  # the right PIN waits too, from that address
    status, _, cookie = post_pin(server, token, "2468", "127.0.0.3")
    assert status == 303 and cookie.startswith("lightbox_share=")
    # Ten wrong PINs in a row, from anywhere, lock the link for good
    token, share = make_link(viewer, study["study"], pin="2468")
    statuses = [post_pin(server, token, "0000", f"127.0.1.{i}")[0] for i in range(1, 11)]
    assert statuses == [403] * 9 + [410], statuses
    assert post_pin(server, token, "2468", "127.0.2.1")[0] == 410
    assert viewer.get(f"/api/studies/{study['study']}/shares").json()["shares"][0]["state"] == "locked"


def test_share_link_terms_are_bounded(viewer: Client, study: dict) -> None:
    for form in ({"days": "91"}, {"days": "0"}, {"days": "x"}, {"pin": "12"}):
        assert viewer.api_post(f"/api/studies/{study['study']}/shares", **form).status_code == 400, form
    assert viewer.api_post(f"/api/studies/{generate_uid()}/shares").status_code == 404


def check_profile(files: dict[str, Dataset], originals: dict[str, Dataset]) -> None:
    """The PS3.15 basic profile, attribute by attribute, and UIDs consistent across the files."""
    assert len(files) == len(originals)
    by_number = {(ds.Modality, int(ds.InstanceNumber)): ds for ds in files.values()}
    new_study = {str(ds.StudyInstanceUID) for ds in files.values()}
    assert len(new_study) == 1 and not new_study & {str(o.StudyInstanceUID) for o in originals.values()}
    for original in originals.values():
        ds = by_number[(original.Modality, int(original.InstanceNumber))]
        assert ds.PatientName == "" and ds.PatientID == "" and ds.PatientBirthDate == ""  # Z
        assert ds.AccessionNumber == "" and ds.StudyID == "" and ds.ReferringPhysicianName == ""  # Z
        for keyword in ("InstitutionName", "StudyDescription"):  # X
            assert keyword not in ds, keyword
        assert ds.SOPInstanceUID != original.SOPInstanceUID and ds.SOPInstanceUID.startswith("2.25.")  # U
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SeriesInstanceUID != original.SeriesInstanceUID
        assert ds.SOPClassUID == original.SOPClassUID  # K
        assert ds.StudyDate != original.StudyDate and len(ds.StudyDate) == 8  # shifted
        assert ds.StudyDate == ds.SeriesDate and ds.StudyTime == original.StudyTime
        assert not any(elem.tag.is_private for elem in ds)
        assert ds.PatientIdentityRemoved == "YES"
        assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113107"]
        assert ds.PixelData == original.PixelData
        burned = "YES" if original.Modality == "US" else None
        assert ds.get("BurnedInAnnotation") == burned
    first, second = sorted((ds for ds in files.values() if ds.Modality == "CT"), key=lambda ds: int(ds.InstanceNumber))
    assert first.FrameOfReferenceUID == second.FrameOfReferenceUID
    assert first.FrameOfReferenceUID not in {str(o.get("FrameOfReferenceUID")) for o in originals.values()}
    assert second.SourceImageSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID  # references follow


def read_zip(content: bytes) -> tuple[dict[str, Dataset], str]:
    archive = zipfile.ZipFile(io.BytesIO(content))
    files = {n: dcmread(io.BytesIO(archive.read(n))) for n in archive.namelist() if n.startswith("IMAGES/")}
    return files, archive.read("DEIDENTIFIED.txt").decode()


def test_download_anonymised_follows_the_basic_profile(viewer: Client, admin: Client, study: dict) -> None:
    answer = viewer.get(f"/api/studies/{study['study']}/anonymised.zip")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/zip"
    for text in SECRET_TEXTS:
        assert text not in answer.content, text
    files, notes = read_zip(answer.content)
    assert len(files) == 3 and "MAY CONTAIN BURNED-IN PATIENT DATA" in notes
    check_profile(files, study["originals"])
    again, _ = read_zip(viewer.get(f"/api/studies/{study['study']}/anonymised.zip").content)
    assert {ds.StudyInstanceUID for ds in again.values()} != {ds.StudyInstanceUID for ds in files.values()}
    events = admin.get("/api/audit", params={"limit": 20}).json()["events"]
    assert any(e["detail"] == "de-identified ZIP, 3 instances" and e["user_name"] == VIEWER for e in events)


def test_deidentified_share_serves_no_patient_data(server: Any, viewer: Client, study: dict) -> None:
    token, share = make_link(viewer, study["study"], deidentify="1")
    stranger = opened(server, token)
    page = stranger.get(f"/share/{token}")
    assert "may contain burned-in patient data" in page.text.lower()
    # The link names the series by its own UIDs; the viewer's facts name the instances so
    series = {}
    for uid in re.findall(r'data-series-uid="([0-9.]+)"', page.text):
        facts = stranger.get(f"/api/series/{uid}/viewer")
        assert facts.status_code == 200, facts.text
        series[facts.json()["series"]["modality"]] = (uid, [i["sop_uid"] for i in facts.json()["instances"]])
    assert sorted(series) == ["CT", "US"]
    answers = [
        page,
        stranger.get(f"/share/{token}/view"),
        stranger.get(f"/share/{token}/view?series={series['US'][0]}"),
    ]
    answers += [
        stranger.get(f"/api/series/{uid}/{what}") for uid, _ in series.values() for what in ("viewer", "geometry")
    ]
    answers += [stranger.get(f"/api/instances/{sop}/frames/1/raw") for _, sops in series.values() for sop in sops]
    answers += [stranger.get(f"/api/series/{series['CT'][0]}/thumbnail")]
    rendered = "/api/instances/{}/frames/1/rendered?format=png&overlays="
    drawn, plain = (viewer.get(rendered.format(study["sops"][0]) + v).content for v in "10")
    answers += [stranger.get(rendered.format(series["CT"][1][0]) + "1")]
    assert answers[-1].content == plain != drawn  # the overlay plane is not drawn through a de-identified link
    thumbnail = stranger.get(f"/api/series/{series['CT'][0]}/thumbnail")
    assert thumbnail.content != viewer.get(f"/api/series/{study['ct']}/thumbnail").content  # nor in the thumbnail
    originals = [study[k] for k in ("study", "ct", "us", "for")] + study["sops"]
    for answer in answers:
        assert answer.status_code == 200, (answer.url, answer.text)
        for text in [*SECRET_TEXTS, *(uid.encode() for uid in originals)]:
            assert text not in answer.content and text.decode() not in str(answer.headers), (answer.url, text)
    # The archive's own UIDs, the original files and the text-bearing routes are not served through it
    for path in (f"/api/series/{study['ct']}/viewer", f"/api/instances/{study['sops'][0]}/frames/1/raw",
                 f"/share/{token}/view?series={study['ct']}"):  # fmt: skip
        assert stranger.get(path).status_code == 404, path
    assert stranger.get(f"/api/studies/{study['study']}/archive.zip").status_code == 401
    assert stranger.get(f"/api/series/{study['ct']}/archive.zip").status_code == 401
    ziped = stranger.get(f"/share/{token}/study.zip")
    assert ziped.status_code == 200
    for text in [*SECRET_TEXTS, *(uid.encode() for uid in originals)]:
        assert text not in ziped.content, text
    files, _ = read_zip(ziped.content)
    check_profile(files, study["originals"])
    # The files carry the UIDs the link's pages gave
    assert sorted(str(ds.SOPInstanceUID) for ds in files.values()) == sorted(sum((s for _, s in series.values()), []))
    assert {str(ds.SeriesInstanceUID) for ds in files.values()} == {uid for uid, _ in series.values()}
    again, _ = read_zip(stranger.get(f"/share/{token}/study.zip").content)  # the same link: the same new UIDs
    assert sorted(ds.SOPInstanceUID for ds in again.values()) == sorted(ds.SOPInstanceUID for ds in files.values())


def patiently(call: Callable[[], requests.Response]) -> requests.Response:
    """``call``, tried again on a connection reset (about one run in ten under libfaketime)."""
    for attempt in range(3):
        try:
            return call()
        except requests.ConnectionError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.mark.slow  # a second server, under libfaketime
def test_share_link_expires_by_the_server_clock(lightbox_factory: Any, tmp_path: Path) -> None:
    """The server runs under libfaketime reading an offset from a file; the test moves it on."""
    from support.web import add_user, first_admin, send_study

    clock = tmp_path / "faketime"

    def move_clock(offset: str) -> None:  # atomically: libfaketime reads the file at every call
        (tmp_path / "faketime.new").write_text(offset + "\n")
        os.replace(tmp_path / "faketime.new", clock)

    move_clock("+0d")
    saved = dict(os.environ)
    # Monotonic time moves too (FAKETIME_DONT_FAKE_MONOTONIC makes libfaketime 0.9.10's sleeps fail).
    os.environ.update({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                       "FAKETIME_TIMESTAMP_FILE": str(clock), "FAKETIME_NO_CACHE": "1"})  # fmt: skip
    try:
        server = lightbox_factory()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    study_uid = send_study(server, tmp_path / "study", 1)
    maker = add_user(first_admin(server), "vet", "correct horse battery")
    token, _ = make_link(maker, study_uid, days="2")
    stranger = Client(base_url(server))
    stranger.headers["Connection"] = "close"  # the server drops connections idle "a day": not the point here

    def status(client: Client, path: str) -> int:
        return patiently(lambda: client.get(path)).status_code

    assert status(stranger, f"/share/{token}") == 200
    move_clock("+1d")
    assert status(stranger, f"/share/{token}") == 200
    move_clock("+3d")
    deadline = time.monotonic() + 10
    while status(stranger, f"/share/{token}") != 410 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status(stranger, f"/share/{token}") == 410
    assert status(stranger, "/api/series/x/thumbnail") == 401
    maker.headers["Connection"] = "close"
    assert patiently(lambda: maker.login("vet", "correct horse battery")).status_code == 303  # her session ended too
    assert maker.get(f"/api/studies/{study_uid}/shares").json()["shares"][0]["state"] == "expired"


def test_share_link_serves_documents_and_reports_unless_deidentified(
    server: Any, viewer: Client, tmp_path: Path
) -> None:
    from support.mediagen import odd_pdf, pdf_dicom, sr_dicom

    image = write(make_dataset(patient_name="Paper^Pia", patient_id="DOC-9"), tmp_path / "image.dcm")
    study_uid = str(dcmread(image, stop_before_pixels=True).StudyInstanceUID)
    pdf_bytes = odd_pdf(tmp_path / "letter.pdf")
    pdf_file = pdf_dicom(tmp_path / "letter.pdf", tmp_path / "pdf.dcm", study_from=image)
    sr_file = sr_dicom(tmp_path / "sr.dcm", study_uid, patient_id="DOC-9", patient_name="Paper^Pia")
    assert server.storescu(image, pdf_file, sr_file).returncode == 0
    pdf, report = (str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in (pdf_file, sr_file))

    token, _ = make_link(viewer, study_uid)
    stranger = opened(server, token)
    page = stranger.get(f"/share/{token}").text
    assert f"/api/instances/{pdf}/document" in page and f"/share/{token}/report/{report}" in page
    assert stranger.get(f"/api/instances/{pdf}/document").content == pdf_bytes
    assert stranger.get(f"/share/{token}/report/{report}").status_code == 200

    token, _ = make_link(viewer, study_uid, deidentify="1")
    stranger = opened(server, token)
    page = stranger.get(f"/share/{token}").text
    assert "Paper" not in page and pdf not in page and report not in page
    assert stranger.get(f"/api/instances/{pdf}/document").status_code == 401
    assert stranger.get(f"/share/{token}/report/{report}").status_code == 404
    ziped = stranger.get(f"/share/{token}/study.zip").content
    assert b"Paper" not in ziped and pdf_bytes[:200] not in ziped
    files, notes = read_zip(ziped)
    assert len(files) == 1 and "an encapsulated document" in notes and "a structured report" in notes


def test_share_pin_from_another_site_is_refused(server: Any, viewer: Client, study: dict) -> None:
    token, _ = make_link(viewer, study["study"], pin="2468")
    stranger = Client(base_url(server))
    answer = stranger.post(f"/share/{token}", data={"pin": "2468"}, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403 and "lightbox_share" not in answer.headers.get("Set-Cookie", "")
    assert stranger.post(f"/share/{token}", data={"pin": "2468"}).status_code == 303
