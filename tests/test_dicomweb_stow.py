"""STOW-RS against a real `lightbox serve`: dicomweb-client's store_instances, the pydicom corpus
byte-identical on disk, the refusals and their FailureReasons, a body cut in the middle leaving
nothing behind, 413 before a too large body is read, 415, 400, and who may store."""

from __future__ import annotations

import base64
import io
import os
import random
import socket
import sqlite3
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient
from pydicom import dcmread
from pydicom.uid import generate_uid

from appliance.web.dicomweb.multipart_in import MalformedMultipart, MultipartReader
from support.corpus import corpus, is_valid_instance
from support.dicomgen import dataset_bytes, make_dataset, make_study, write
from support.lightbox import LightboxProcess
from support.web import ADMIN, ADMIN_PASSWORD, Client, first_admin

MAX_STOW_MB = 8
MAX_INSTANCE_MB = 2
BOUNDARY = "lightbox-test-boundary"
REFERENCED, FAILED, FAILURE_REASON, RETRIEVE_URL = "00081199", "00081198", "00081197", "00081190"
SOP_INSTANCE = "00081155"


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"dicomweb_max_stow_mb": MAX_STOW_MB, "max_instance_mb": MAX_INSTANCE_MB}


@pytest.fixture(scope="module")
def base(server: LightboxProcess, admin: Client) -> str:
    return f"http://127.0.0.1:{server.http_port}/dicom-web"


def basic() -> str:
    return "Basic " + base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()


def multipart(*parts: bytes, part_type: str = "application/dicom") -> bytes:
    body = b""
    for part in parts:
        body += f"--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def stow(url: str, body: bytes, content_type: str | None = None, **headers: str) -> requests.Response:
    headers.setdefault("Authorization", basic())
    headers["Content-Type"] = content_type or f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    return requests.post(url, data=body, headers=headers, timeout=60)


def stored_files(data: Path) -> dict[str, Path]:
    with sqlite3.connect(data / "index.sqlite") as db:
        return {uid: data / "storage" / key for uid, key in db.execute("select sop_uid, file_key from instance")}


def items(answer: dict, tag: str) -> list[dict]:
    return answer.get(tag, {}).get("Value", [])


def uids(answer: dict, tag: str) -> list[str]:
    return [item[SOP_INSTANCE]["Value"][0] for item in items(answer, tag) if "Value" in item[SOP_INSTANCE]]


def encoded(ds: pydicom.Dataset) -> bytes:
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds)
    return out.getvalue()


def spool_left(server: LightboxProcess) -> list[str]:
    """Files in the spool folder, and spool files the server still holds open (waitress's
    buffer of a request body is unlinked at once, so only /proc shows it)."""
    spool = server.data / "spool"
    held = []
    assert server.proc is not None
    fds = Path(f"/proc/{server.proc.pid}/fd")
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(spool)):
            held.append(target)
    return sorted(os.listdir(spool)) + held


def spool_emptied(server: LightboxProcess) -> bool:
    """Whether the spool empties within 10 s (a dropped connection is closed by the server's loop)."""
    deadline = time.monotonic() + 10
    while spool_left(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    return spool_left(server) == []


def test_dicomweb_client_store_instances_stored_as_sent(server, base, tmp_path):
    datasets = [dcmread(p) for p in make_study(tmp_path / "study", 3)]
    session = requests.Session()
    session.auth = (ADMIN, ADMIN_PASSWORD)
    client = DICOMwebClient(url=base, session=session)
    answer = client.store_instances(datasets)
    sent = {str(ds.SOPInstanceUID): ds for ds in datasets}
    assert sorted(uids(answer.to_json_dict(), REFERENCED)) == sorted(sent)
    assert FAILED not in answer.to_json_dict()
    study = str(datasets[0].StudyInstanceUID)
    # URLs are made from the Host header, and dicomweb-client sends it without the port.
    assert urlsplit(answer.RetrieveURL).path == f"/dicom-web/studies/{study}"
    for item in answer.ReferencedSOPSequence:
        ds = sent[item.ReferencedSOPInstanceUID]
        assert item.ReferencedSOPClassUID == ds.SOPClassUID
        assert urlsplit(item.RetrieveURL).path == (
            f"/dicom-web/studies/{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        )
    stored = stored_files(server.data)
    for uid, ds in sent.items():
        # What dicomweb-client sent (pydicom.dcmwrite of the dataset), byte for byte after the meta header.
        sent_file = tmp_path / f"{uid}.sent"
        sent_file.write_bytes(encoded(ds))
        assert dataset_bytes(stored[uid]) == dataset_bytes(sent_file)
        assert dcmread(stored[uid], stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID == uid
    with sqlite3.connect(server.data / "index.sqlite") as db:
        details = [d for (d,) in db.execute("select detail from auditevent where study_uid = ?", (study,))]
    assert "3 images received by STOW-RS" in details
    assert server.cli("verify").returncode == 0


@pytest.mark.slow  # the whole pydicom corpus, a request per file
def test_stow_corpus_valid_instances_byte_identical_invalid_refused(server, base):
    first_sent: dict[str, Path] = {}
    refused: dict[str, int] = {}
    for path in corpus():
        if path.stat().st_size > MAX_INSTANCE_MB << 20:
            continue
        answer = stow(base + "/studies", multipart(path.read_bytes()))
        if is_valid_instance(path):
            assert answer.status_code == 200, f"{path.name}: {answer.status_code} {answer.text}"
            (uid,) = uids(answer.json(), REFERENCED)
            assert uid == str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            first_sent.setdefault(uid, path)
        elif answer.status_code == 409:
            (item,) = items(answer.json(), FAILED)
            refused[path.name] = item[FAILURE_REASON]["Value"][0]
            assert refused[path.name] in (0xA900, 0xC000), path.name
        else:
            # Not valid by the test's judgement (e.g. no meta header: pydicom cannot say), yet
            # the archive's own validation accepted it: it must then be stored whole.
            assert answer.status_code == 200, f"{path.name}: {answer.status_code} {answer.text}"
            (uid,) = uids(answer.json(), REFERENCED)
            assert uid in stored_files(server.data), path.name
    assert len(first_sent) > 80 and len(refused) > 3, (len(first_sent), refused)
    stored = stored_files(server.data)
    for uid, path in first_sent.items():
        assert uid in stored, f"{path.name} acknowledged but not indexed"
        assert dataset_bytes(stored[uid]) == dataset_bytes(path), f"{path.name}: stored dataset differs"
    assert server.cli("verify").returncode == 0


def test_chunked_transfer_encoding_from_dicomweb_client(server, base, tmp_path):
    datasets = [dcmread(p) for p in make_study(tmp_path / "study", 4, rows=128, columns=128)]
    session = requests.Session()
    session.auth = (ADMIN, ADMIN_PASSWORD)
    client = DICOMwebClient(url=base, session=session, chunk_size=50_000)  # the body is ~130 KB: chunked
    answer = client.store_instances(datasets)
    assert sorted(uids(answer.to_json_dict(), REFERENCED)) == sorted(str(ds.SOPInstanceUID) for ds in datasets)
    assert answer.RetrieveURL == f"{base}/studies/{datasets[0].StudyInstanceUID}"  # Host with its port here


def test_instances_of_another_study_refused_with_mismatch(server, base, tmp_path):
    study = generate_uid()
    ours = make_study(tmp_path / "ours", 1, study_uid=study)[0]
    other = make_study(tmp_path / "other", 1)[0]
    answer = stow(f"{base}/studies/{study}", multipart(ours.read_bytes(), other.read_bytes()))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert uids(body, REFERENCED) == [str(dcmread(ours).SOPInstanceUID)]
    (failed,) = items(body, FAILED)
    assert failed[SOP_INSTANCE]["Value"] == [str(dcmread(other).SOPInstanceUID)]
    assert failed[FAILURE_REASON]["Value"] == [0xA900]
    assert body[RETRIEVE_URL]["Value"] == [f"{base}/studies/{study}"]
    assert str(dcmread(other).SOPInstanceUID) not in stored_files(server.data)
    all_refused = stow(f"{base}/studies/{generate_uid()}", multipart(other.read_bytes()))
    assert all_refused.status_code == 409
    assert items(all_refused.json(), FAILED)[0][FAILURE_REASON]["Value"] == [0xA900]


def test_refusals_carry_their_failure_reasons(server, base, tmp_path):
    no_sop_uid = make_dataset()
    del no_sop_uid.SOPInstanceUID
    buffer = io.BytesIO()
    no_sop_uid.save_as(buffer, implicit_vr=False, little_endian=True)
    too_large = b"\0" * ((MAX_INSTANCE_MB << 20) + 1)
    valid = make_study(tmp_path / "valid", 1)[0]
    answer = stow(base + "/studies", multipart(b"not DICOM at all", buffer.getvalue(), too_large, valid.read_bytes()))
    assert answer.status_code == 202, answer.text
    reasons = [item[FAILURE_REASON]["Value"][0] for item in items(answer.json(), FAILED)]
    assert reasons == [0xC000, 0xA900, 0xA700]
    assert uids(answer.json(), REFERENCED) == [str(dcmread(valid).SOPInstanceUID)]
    wrong_part = stow(base + "/studies", multipart(valid.read_bytes(), part_type="image/jpeg"))
    assert wrong_part.status_code == 409
    assert items(wrong_part.json(), FAILED)[0][FAILURE_REASON]["Value"] == [0xC000]
    assert spool_left(server) == []


def test_a_duplicate_is_answered_like_c_store(server, base, tmp_path):
    path = make_study(tmp_path / "dup", 1)[0]
    first = stow(base + "/studies", multipart(path.read_bytes()))
    again = stow(base + "/studies", multipart(path.read_bytes()))
    assert first.status_code == again.status_code == 200
    assert uids(again.json(), REFERENCED) == uids(first.json(), REFERENCED)


def test_each_part_of_a_many_part_request_is_answered_as_c_store_would(server, base, tmp_path):
    """Twenty-four parts in one request, ingested in batches (one commit each): a part that is not
    DICOM is refused, an instance stored before and one sent twice in the request are stored
    already, one under a known UID with other bytes is kept first (an incident), one of another
    study is refused; every other part is stored, and each once in the change log."""
    study = generate_uid()
    files = make_study(tmp_path / "many", 20, rows=128, columns=128, study_uid=study)
    uid = [str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files]
    assert stow(f"{base}/studies/{study}", multipart(files[0].read_bytes(), files[1].read_bytes())).status_code == 200
    other_bytes = write(make_dataset(study_uid=study, sop_uid=uid[1], seed=99), tmp_path / "other.dcm").read_bytes()
    elsewhere = make_study(tmp_path / "elsewhere", 1)[0]
    parts = [files[0].read_bytes(), other_bytes, b"not DICOM at all", *(p.read_bytes() for p in files[2:12]),
             elsewhere.read_bytes(), files[5].read_bytes(), *(p.read_bytes() for p in files[12:])]  # fmt: skip
    answer = stow(f"{base}/studies/{study}", multipart(*parts))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert uids(body, REFERENCED) == uid[0:2] + uid[2:12] + [uid[5]] + uid[12:]
    failed = items(body, FAILED)
    assert [item[FAILURE_REASON]["Value"] for item in failed] == [[0xC000], [0xA900]]
    assert failed[1][SOP_INSTANCE]["Value"] == [str(dcmread(elsewhere).SOPInstanceUID)]
    stored = stored_files(server.data)
    for n, path in enumerate(files):
        assert dataset_bytes(stored[uid[n]]) == dataset_bytes(path), n  # the first bytes of uid[1] kept
    with sqlite3.connect(server.data / "index.sqlite") as db:
        changes = [u for (u,) in db.execute("select sop_uid from change where kind = 'instance_stored'")]
        incidents = db.execute("select kind from incident where sop_uid = ?", (uid[1],)).fetchall()
    assert sorted(u for u in changes if u in uid) == sorted(uid)
    assert incidents == [("duplicate_differs",)]
    assert spool_left(server) == []


def test_store_answer_negotiated_json_or_xml_and_406_before_storing(server, base, tmp_path):
    """The Store Instances Response in XML (PS3.19) says what the JSON one says; an Accept that
    takes neither is a 406 and nothing of the body is stored."""
    first, second = make_study(tmp_path / "xml", 2)
    refused = stow(base + "/studies", multipart(first.read_bytes()), Accept="text/html")
    assert refused.status_code == 406 and "dicom+xml" in refused.json()["error"]
    assert str(dcmread(first).SOPInstanceUID) not in stored_files(server.data)
    answer = stow(base + "/studies", multipart(first.read_bytes(), b"junk"), Accept="application/dicom+xml")
    assert answer.status_code == 202 and answer.headers["Content-Type"] == "application/dicom+xml"
    ns = "{http://dicom.nema.org/PS3.19/models/NativeDICOM}"
    root = ET.fromstring(answer.content)
    assert root.tag == ns + "NativeDicomModel"
    ds = dcmread(first)
    study_url = root.findtext(f"{ns}DicomAttribute[@tag='{RETRIEVE_URL}']/{ns}Value") or ""
    assert urlsplit(study_url).path == f"/dicom-web/studies/{ds.StudyInstanceUID}"
    [item] = root.findall(f"{ns}DicomAttribute[@tag='{REFERENCED}']/{ns}Item")
    assert item.findtext(f"{ns}DicomAttribute[@keyword='ReferencedSOPInstanceUID']/{ns}Value") == ds.SOPInstanceUID
    assert urlsplit(item.findtext(f"{ns}DicomAttribute[@tag='{RETRIEVE_URL}']/{ns}Value") or "").path == (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    [failed] = root.findall(f"{ns}DicomAttribute[@tag='{FAILED}']/{ns}Item")
    assert failed.findtext(f"{ns}DicomAttribute[@tag='{FAILURE_REASON}']/{ns}Value") == str(0xC000)
    # JSON when both are acceptable and JSON is preferred, or nothing is said.
    for accept in ("application/dicom+xml;q=0.5, application/dicom+json", None):
        headers = {"Accept": accept} if accept else {}
        as_json = stow(base + "/studies", multipart(second.read_bytes()), **headers)
        assert as_json.status_code == 200 and as_json.headers["Content-Type"] == "application/dicom+json"
        assert uids(as_json.json(), REFERENCED) == [str(dcmread(second).SOPInstanceUID)]


def test_wrong_content_type_415_and_malformed_multipart_400(server, base, tmp_path):
    path = make_study(tmp_path / "s", 1)[0]
    assert stow(base + "/studies", path.read_bytes(), "application/dicom").status_code == 415
    xml = f'multipart/related; type="application/dicom+xml"; boundary={BOUNDARY}'
    assert stow(base + "/studies", multipart(path.read_bytes()), xml).status_code == 415
    no_boundary = stow(base + "/studies", multipart(path.read_bytes()), 'multipart/related; type="application/dicom"')
    assert no_boundary.status_code == 400
    unclosed = stow(base + "/studies", f"--{BOUNDARY}\r\n\r\n".encode() + path.read_bytes())
    assert unclosed.status_code == 400 and "malformed" in unclosed.json()["error"]
    assert stow(base + "/studies", multipart()).status_code == 400  # no parts
    assert str(dcmread(path).SOPInstanceUID) not in stored_files(server.data)


def test_who_may_store(server, base, admin, viewer, tmp_path):
    body = multipart(make_study(tmp_path / "s", 1)[0].read_bytes())
    anonymous = stow(base + "/studies", body, Authorization="")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert anonymous.headers["Content-Type"] == "application/json"
    content_type = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    as_viewer = viewer.post("/dicom-web/studies", data=body, headers={"Content-Type": content_type,
                                                                       "X-CSRF-Token": viewer.csrf()})  # fmt: skip
    assert as_viewer.status_code == 403
    no_csrf = admin.post("/dicom-web/studies", data=body, headers={"Content-Type": content_type})
    assert no_csrf.status_code == 403
    with_csrf = admin.post("/dicom-web/studies", data=body, headers={"Content-Type": content_type,
                                                                      "X-CSRF-Token": admin.csrf()})  # fmt: skip
    assert with_csrf.status_code == 200, with_csrf.text


def raw_request(server: LightboxProcess, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
    sock.sendall(head.encode() + body)
    return sock


def test_a_body_cut_in_the_middle_leaves_nothing_behind(server, base, tmp_path):
    files = make_study(tmp_path / "cut", 3, rows=512, columns=512)  # ~0.5 MB each: waitress buffers to a file
    body = multipart(*(p.read_bytes() for p in files))
    before = len(stored_files(server.data))
    head = (
        "POST /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {basic()}\r\nContent-Length: {len(body)}\r\n"
        f'Content-Type: multipart/related; type="application/dicom"; boundary={BOUNDARY}\r\n\r\n'
    )
    sock = raw_request(server, head, body[: len(body) * 3 // 4])  # two whole parts and a half
    time.sleep(0.5)  # the server has read what was sent
    assert spool_left(server), "waitress buffers the body in the spool folder"
    sock.close()
    assert spool_emptied(server)
    assert len(stored_files(server.data)) == before
    assert all(str(dcmread(p).SOPInstanceUID) not in stored_files(server.data) for p in files)
    assert stow(base + "/studies", body).status_code == 200  # and the whole body, sent again, is stored


def test_a_body_over_the_limit_is_refused_413_before_it_is_read(server):
    declared = (MAX_STOW_MB << 20) + 1
    head = (
        "POST /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {basic()}\r\nContent-Length: {declared}\r\n"
        f'Content-Type: multipart/related; type="application/dicom"; boundary={BOUNDARY}\r\n\r\n'
    )
    sock = raw_request(server, head)  # not a byte of the body
    with sock:
        answer = sock.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer
    # Without credentials, only the small bound applies (the login is checked after the body is in).
    sock = raw_request(server, head.replace(f"Authorization: {basic()}\r\n", "").replace(str(declared), str(2 << 20)))
    with sock:
        assert sock.recv(4096).decode("latin-1").startswith("HTTP/1.1 413")


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
def test_the_multipart_reader_splits_parts_exactly_whatever_the_chunk_size(chunk):
    """Contents holding near-delimiters (a delimiter's prefix, the boundary without its CRLF)
    come back byte for byte, read 1 to 4096 bytes at a time."""
    rng = random.Random(chunk)
    tricky = [b"\r\n--" + BOUNDARY.encode()[:-1], b"--" + BOUNDARY.encode(), b"\r\n-", b"\r\n\r\n", b""]
    delimiter = b"\r\n--" + BOUNDARY.encode()
    contents = [b""]
    while len(contents) < 8:
        content = b"".join(rng.choice(tricky) + rng.randbytes(rng.randrange(50)) for _ in range(20))
        if (b"\r\n" + content + delimiter).find(delimiter) == len(content) + 2:  # RFC 2046: never inside
            contents.append(content)
    body = b"preamble\r\n" + multipart(*contents) + b"epilogue"
    reader = MultipartReader(io.BytesIO(body), BOUNDARY, len(body), chunk)
    read = [(part.content_type, b"".join(part.chunks)) for part in reader.parts()]
    assert read == [("application/dicom", c) for c in contents]
    with pytest.raises(MalformedMultipart):
        for part in MultipartReader(io.BytesIO(body[:-30]), BOUNDARY, len(body) - 30, chunk).parts():
            b"".join(part.chunks)


def test_below_the_free_space_reserve_parts_are_refused_with_a700(lightbox_factory, tmp_path):
    server = lightbox_factory("reserve", min_free_mb=1 << 30)  # a reserve no disk has
    first_admin(server)
    body = multipart(*(p.read_bytes() for p in make_study(tmp_path / "s", 2)))
    answer = stow(f"http://127.0.0.1:{server.http_port}/dicom-web/studies", body)
    assert answer.status_code == 409, answer.text
    assert [item[FAILURE_REASON]["Value"] for item in items(answer.json(), FAILED)] == [[0xA700], [0xA700]]
    assert stored_files(server.data) == {}
    assert spool_left(server) == []


def test_a_body_the_disk_cannot_hold_leaves_nothing_behind(small_tmpfs, lightbox_factory, tmp_path):
    """The body is buffered in the spool: when the disk fills while it arrives, the request gets
    no answer (waitress drops the connection), nothing is stored, and the server goes on."""
    with open(small_tmpfs / "filler.bin", "wb") as f:
        f.write(os.urandom(4 << 20))
    server = lightbox_factory("small", min_free_mb=0)
    assert server.data == small_tmpfs
    first_admin(server)
    url = f"http://127.0.0.1:{server.http_port}/dicom-web/studies"
    files = make_study(tmp_path / "big", 12, rows=512, columns=512)  # 6 MB: more than is left
    with pytest.raises(requests.ConnectionError):
        stow(url, multipart(*(p.read_bytes() for p in files)))
    assert stored_files(server.data) == {}
    assert spool_emptied(server)
    (small_tmpfs / "filler.bin").unlink()
    assert stow(url, multipart(files[0].read_bytes())).status_code == 200
