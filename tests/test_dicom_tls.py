"""DICOM TLS (PS3.15 Annex B): Lightbox's TLS port with DCMTK's `+tls` tools and Orthanc as
peers, both ways; trust per node; the handshake never takes a thread or a slot."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from support.dicomgen import dataset_bytes, make_study
from support.lightbox import LightboxProcess
from support.peers import Orthanc, StoreSCP
from support.qr import add_node
from support.scu import rows
from support.tools import dcmtk
from support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("netns")  # storescp and Orthanc cannot bind to 127.0.0.1 only


def certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate and its key, as a peer's admin would make them."""
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", f"/CN={name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def box_certificate(server: LightboxProcess) -> Path:
    return server.data / "tls" / "lightbox.crt"


def tls_tool(
    server: LightboxProcess, tool: str, key: Path | None, cert: Path | None, aet: str, files: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess:
    """A DCMTK tool over TLS to the TLS port: showing ``cert`` (anonymous when None), trusting
    the box's certificate only."""
    shown = ["+tls", str(key), str(cert)] if cert else ["+tla"]
    return subprocess.run(
        [dcmtk(tool), "-v", *shown, "+cf", str(box_certificate(server)), "-aet", aet, "-aec", server.aet,
         "127.0.0.1", str(server.dicom_tls_port), *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def trust_node(server: LightboxProcess, aet: str, port: int, cert: Path, *extra: str) -> None:
    result = server.cli("node", "add", "--aet", aet, "--host", "127.0.0.1", "--port", str(port),
                        "--trust", str(cert), *extra)  # fmt: skip
    assert result.returncode == 0, result.stderr


def by_sop_uid(paths: list[Path]) -> dict[str, bytes]:
    return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): dataset_bytes(p) for p in paths}


def test_storescu_over_tls_with_a_trusted_certificate_stores_byte_identical(lightbox, tmp_path):
    key, cert = certificate(tmp_path / "peer", "CT1")
    trust_node(lightbox, "CT1", 104, cert, "--allow", "find")
    files = make_study(tmp_path / "corpus", 3)
    stored = tls_tool(lightbox, "storescu", key, cert, "CT1", tuple(files))
    assert stored.returncode == 0, stored.stdout + stored.stderr
    assert lightbox.count() == 3
    uids = {uid for (uid,) in rows(lightbox.data, "SELECT sop_uid FROM instance")}
    assert uids == set(by_sop_uid(files))
    log = lightbox.log()
    assert "tls=TLSv1.3 peer_certificate='commonName=CT1'" in log
    # The plain port serves as before, beside it.
    assert lightbox.echoscu().returncode == 0


def test_untrusted_or_missing_certificates_are_refused_with_one_line_each(lightbox, tmp_path):
    key, cert = certificate(tmp_path / "peer", "STRANGER")
    assert tls_tool(lightbox, "echoscu", key, cert, "STRANGER").returncode != 0
    assert tls_tool(lightbox, "echoscu", None, None, "ANON").returncode != 0
    # Plain DICOM on the TLS port is not TLS: refused as well.
    plain = subprocess.run([dcmtk("echoscu"), "-aec", lightbox.aet, "127.0.0.1", str(lightbox.dicom_tls_port)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert plain.returncode != 0
    refusals = [line for line in lightbox.log().splitlines() if "association_refused" in line and "TLS:" in line]
    assert len(refusals) == 3, refusals
    assert any("CERTIFICATE_VERIFY_FAILED" in line for line in refusals)
    assert any("PEER_DID_NOT_RETURN_A_CERTIFICATE" in line for line in refusals)
    assert "Traceback" not in lightbox.log()
    alerts = "SELECT detail FROM auditevent WHERE event = 'SecurityAlert' AND detail LIKE '%TLS%'"
    wait_for(lambda: rows(lightbox.data, alerts), "the refusal in the audit trail")  # written apart
    # Once trusted (no restart), the same certificate gets in.
    trust_node(lightbox, "STRANGER", 104, cert)
    assert tls_tool(lightbox, "echoscu", key, cert, "STRANGER").returncode == 0
    assert lightbox.echoscu().returncode == 0


def test_any_peer_may_encrypt_when_the_setting_says_so(lightbox_factory, tmp_path):
    server = lightbox_factory(dicom_tls_peers="any")
    echo = tls_tool(server, "echoscu", None, None, "ANON")
    assert echo.returncode == 0, echo.stdout + echo.stderr
    assert "tls=TLSv1.3 peer_certificate=none" in server.log()


def test_tls_1_1_and_weak_ciphers_are_refused(lightbox, tmp_path):
    """BCP 195: TLS 1.2 at least, forward secrecy and AEAD only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA")  # RSA key exchange, CBC: not BCP 195
    with (
        socket.create_connection(("127.0.0.1", lightbox.dicom_tls_port), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(raw)
    assert lightbox.echoscu().returncode == 0


@pytest.mark.slow
def test_c_move_to_a_tls_node_goes_over_tls_with_its_pinned_certificate(lightbox, tmp_path):
    files = make_study(tmp_path / "corpus", 3)
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    assert lightbox.storescu(*files).returncode == 0
    key, cert = certificate(tmp_path / "dest", "DEST")
    _, other = certificate(tmp_path / "other", "OTHER")
    scp = StoreSCP(tmp_path / "received", "DEST", ("+tls", str(key), str(cert), "+cf", str(box_certificate(lightbox))))
    try:
        add_node(lightbox, "MOVESCU", 1, "move")

        def move() -> subprocess.CompletedProcess:
            return subprocess.run(
                [dcmtk("movescu"), "-v", "-S", "-aet", "MOVESCU", "-aec", lightbox.aet, "-aem", "DEST",
                 "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
                 "127.0.0.1", str(lightbox.dicom_port)],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip

        # Pinned to another certificate: TLS fails, nothing is sent, the move says so.
        trust_node(lightbox, "DEST", scp.port, other, "--tls", "--allow", "store")
        refused = move()
        assert "Final Move Response (Refused: OutOfResourcesSubOperations)" in refused.stderr and not scp.files()
        assert "TLS with 127.0.0.1" in lightbox.log() and "CERTIFICATE_VERIFY_FAILED" in lightbox.log()
        # Pinned to its own: the study arrives, each instance byte for byte with its UIDs.
        trust_node(lightbox, "DEST", scp.port, cert, "--tls", "--allow", "store")
        moved = move()
        assert "Final Move Response (Success)" in moved.stderr, moved.stderr
        received = scp.files()
    finally:
        scp.stop()
    assert by_sop_uid(received) == by_sop_uid(files)
    # The node's echo (CLI) goes over TLS too.
    echo = lightbox.cli("node", "echo", "DEST")
    assert echo.returncode == 1 and "TLS" in echo.stdout  # storescp is gone: nothing answers


@pytest.mark.slow
def test_orthanc_with_dicom_tls_both_ways(lightbox, tmp_path):
    key, cert = certificate(tmp_path / "orthanc-tls", "ORTHANC")
    first = make_study(tmp_path / "a", 2)
    second = make_study(tmp_path / "b", 2)
    first_uid = str(dcmread(first[0], stop_before_pixels=True).StudyInstanceUID)
    orthanc = Orthanc(
        tmp_path / "orthanc",
        {"lightbox": {"AET": lightbox.aet, "Host": "127.0.0.1", "Port": lightbox.dicom_tls_port, "UseDicomTls": True}},
        DicomTlsEnabled=True,
        DicomTlsCertificate=str(cert),
        DicomTlsPrivateKey=str(key),
        DicomTlsTrustedCertificates=str(box_certificate(lightbox)),
    )
    try:
        trust_node(lightbox, "ORTHANC", orthanc.dicom_port, cert, "--tls")
        # Orthanc -> Lightbox: C-ECHO and C-STORE over TLS.
        assert orthanc.rest("POST", "/modalities/lightbox/echo", {}) == {}
        for path in second:
            uploaded = _upload(orthanc, path)
            orthanc.rest("POST", "/modalities/lightbox/store", {"Resources": [uploaded], "Synchronous": True})
        assert lightbox.count() == 2
        # Lightbox -> Orthanc: Orthanc asks Lightbox (over TLS) to C-MOVE the first study to it,
        # and Lightbox opens a TLS association back.
        assert lightbox.storescu(*first).returncode == 0
        orthanc.rest(
            "POST",
            "/modalities/lightbox/move",
            {"Level": "Study", "Resources": [{"StudyInstanceUID": first_uid}], "TargetAet": "ORTHANC"},
        )
        stored = orthanc.save_instances(tmp_path / "from-orthanc")
        echo = lightbox.cli("node", "echo", "ORTHANC")
        assert echo.returncode == 0, echo.stdout + echo.stderr
    finally:
        orthanc.stop()
    assert by_sop_uid(stored) == by_sop_uid(first + second)
    log = lightbox.log()
    assert "calling_ae='ORTHANC'" in log and "peer_certificate='commonName=ORTHANC'" in log


def _upload(orthanc: Orthanc, path: Path) -> str:
    """Put a file into Orthanc over its REST API; its instance id."""
    import json
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{orthanc.http_port}/instances", data=path.read_bytes())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as answer:
        return json.load(answer)["ID"]


@pytest.mark.slow
def test_silent_and_slow_handshakes_take_no_thread_or_slot(lightbox_factory, tmp_path):
    """The handshake is done by the accepting thread without blocking: 200 silent connections
    and 10 that trickle a ClientHello leave the thread count flat, and a trusted peer still gets in."""
    server = lightbox_factory(dicom_workers=0, max_associations=4)
    key, cert = certificate(tmp_path / "peer", "CT1")
    trust_node(server, "CT1", 104, cert)
    assert server.proc is not None
    threads_before = len(list(Path(f"/proc/{server.proc.pid}/task").iterdir()))
    silent = [socket.create_connection(("127.0.0.1", server.dicom_tls_port)) for _ in range(200)]
    hello = bytes.fromhex("160301") + b"\x02\x00" + b"\x01"  # a TLS record header and one byte of a ClientHello
    trickling = [socket.create_connection(("127.0.0.1", server.dicom_tls_port)) for _ in range(10)]
    stop = threading.Event()

    def trickle() -> None:
        for position in range(len(hello)):
            for sock in trickling:
                try:
                    sock.send(hello[position : position + 1])
                except OSError:
                    pass
            if stop.wait(0.5):
                return

    feeder = threading.Thread(target=trickle)
    feeder.start()
    try:
        time.sleep(1)
        threads_during = len(list(Path(f"/proc/{server.proc.pid}/task").iterdir()))
        echo = tls_tool(server, "echoscu", key, cert, "CT1")
        assert echo.returncode == 0, echo.stdout + echo.stderr
    finally:
        stop.set()
        feeder.join()
        for sock in silent + trickling:
            sock.close()
    assert threads_during <= threads_before + 1, (threads_before, threads_during)
