"""Probes of a hostile peer on the clinic's LAN (issue 14), each bounded in count and time, and
what Lightbox does about them: the learned-device table, the admin's terminal, request bodies,
odd query strings and redirects, the data folder's modes, the called AE title, idle web
connections and stalled TLS handshakes."""

from __future__ import annotations

import contextlib
import io
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path

import pytest
import requests
from PIL import Image
from pydicom import dcmread

from appliance.archive import Archive, ArchiveOptions, AssociationSeen
from appliance.dicom.probe import echo
from appliance.web.bodylimits import MAX_BODY, PUBLIC_FORM_BODY
from appliance.web.tls import HANDSHAKE_S
from bench.procstat import pss_bytes
from support.dicomgen import make_study
from support.lightbox import LightboxProcess
from support.tools import dcmtk
from support.web import ADMIN, ADMIN_PASSWORD, Client, base_url, first_admin, https_client, login_from


def made_up_associations(server: LightboxProcess, titles: list[str]) -> None:
    for title in titles:
        echo("127.0.0.1", server.dicom_port, server.aet, title, timeout=10)


@pytest.mark.slow
def test_learned_devices_are_bounded_and_noise_gives_way(lightbox_factory, tmp_path: Path) -> None:
    """2,000 made-up AE titles grew the Devices page to 7.3 MB; now the table keeps
    ``max_learned_devices``, and a device that stored images is never the one dropped."""
    server = lightbox_factory(max_learned_devices=20)
    assert server.storescu(*make_study(tmp_path / "study", 2), aet="REALMOD").returncode == 0
    made_up_associations(server, [f"NOISE{n:05d}" for n in range(60)])
    admin = first_admin(server)
    devices = admin.get("/api/devices").json()
    titles = [d["aet"] for d in devices["devices"]]
    assert len(titles) == 20, titles
    assert "REALMOD" in titles
    assert "NOISE00059" in titles and "NOISE00000" not in titles  # the oldest noise went first
    listed = server.cli("device", "list").stdout.splitlines()
    assert len([line for line in listed if line.strip()]) == 20


def test_full_table_of_real_devices_admits_newcomers_without_recording_them(tmp_path: Path) -> None:
    with Archive(tmp_path / "data", ArchiveOptions(max_devices=3)) as archive:
        for n in range(3):
            archive.devices.admit(AssociationSeen(f"US{n}", "10.0.0.9"))
            archive.devices.rename(f"US{n}", f"Ultrasound {n}")  # an admin's: never noise
        assert archive.devices.admit(AssociationSeen("NEWCOMER", "10.0.0.9"))  # learning admits
        assert sorted(d.aet for d in archive.devices.all()) == ["US0", "US1", "US2"]
        archive.devices.set_policy("locked")
        assert not archive.devices.admit(AssociationSeen("STRANGER", "10.0.0.9"))


def test_device_list_escapes_what_a_peer_puts_in_its_ae_title(lightbox: LightboxProcess) -> None:
    """An AE title with a terminal escape (retitle the window, clear the screen) reaches
    `lightbox device list` escaped, never raw."""
    echo("127.0.0.1", lightbox.dicom_port, lightbox.aet, "\x1b]0;PWN\x07\x1b[2J", timeout=10)
    listed = lightbox.cli("device", "list")
    assert listed.returncode == 0, listed.stderr
    assert "\x1b" not in listed.stdout and "\x07" not in listed.stdout
    assert "\\x1b]0;PWN\\x07" in listed.stdout


def test_request_bodies_are_capped_per_route(lightbox: LightboxProcess) -> None:
    base = base_url(lightbox)
    # Declared far over the cap: refused from the header, before a byte of body is read.
    with socket.create_connection(("127.0.0.1", lightbox.http_port), timeout=10) as sock:
        sock.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 209715200\r\n\r\n")
        assert sock.recv(200).startswith(b"HTTP/1.1 413"), "a 200 MB login body was not refused"
    login_form = {"name": ADMIN, "password": "x" * (PUBLIC_FORM_BODY + 1)}
    assert requests.post(base + "/login", data=login_form, timeout=30).status_code == 413
    assert requests.post(base + "/api/users", data=b"x" * (MAX_BODY + 1), timeout=30).status_code == 413
    assert requests.get(base + "/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "query",
    ["page=99999999999999999999999", "page=" + "9" * 5000, "limit=" + "9" * 30, "page=1e3", "page=-1"],
)
def test_odd_page_numbers_are_a_400_not_a_500(server: LightboxProcess, admin: Client, query: str) -> None:
    answer = admin.get("/api/studies?" + query)
    assert answer.status_code == 400, (query, answer.status_code, answer.text[:200])
    assert admin.get("/?" + query).status_code == 400


@pytest.mark.parametrize(
    "target", ["/\t/evil.example", "/\x0b/evil.example", "/\r\n//evil.example", "//evil.example", "/\\evil.example"]
)
def test_login_never_redirects_off_the_box(server: LightboxProcess, admin: Client, target: str) -> None:
    client = Client(base_url(server))
    answer = client.post("/login", data={"name": ADMIN, "password": ADMIN_PASSWORD, "next": target})
    assert answer.status_code == 303, answer.text[:300]
    assert answer.headers["Location"] in ("/", base_url(server) + "/"), answer.headers["Location"]
    page = client.get("/login", params={"next": target})
    assert page.status_code in (200, 303)


def test_login_keeps_a_path_of_ours(server: LightboxProcess, admin: Client) -> None:
    client = Client(base_url(server))
    answer = client.post("/login", data={"name": ADMIN, "password": ADMIN_PASSWORD, "next": "/admin/devices?x=1"})
    assert answer.headers["Location"].endswith("/admin/devices?x=1")


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_everything_in_the_data_folder_is_private(lightbox: LightboxProcess, tmp_path: Path) -> None:
    assert lightbox.storescu(*make_study(tmp_path / "study", 3)).returncode == 0
    first_admin(lightbox)  # a session and the audit trail written
    lightbox.stop()
    found = list(lightbox.data.rglob("*"))
    stored = [p for p in found if p.is_file() and p.relative_to(lightbox.data).parts[0] == "storage"]
    assert (lightbox.data / "index.sqlite") in found and len(stored) == 3
    shared = [f"{p.relative_to(lightbox.data)} {stat.filemode(p.stat().st_mode)}" for p in found if not private(p)]
    assert not shared, shared


def test_an_older_install_is_made_private_when_opened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Archive(data).close()
    (data / "index.sqlite").chmod(0o644)
    with Archive(data):
        assert private(data / "index.sqlite") and private(data / "index.sqlite-wal")


@pytest.mark.slow
def test_called_ae_title_is_checked_only_when_asked(lightbox_factory) -> None:
    anyone = lightbox_factory("any")
    assert echo_as_called(anyone, "SOMEPACS").returncode == 0
    strict = lightbox_factory("own", called_aet_check="own")
    refused = echo_as_called(strict, "SOMEPACS")
    assert refused.returncode != 0 and "Called AE Title Not Recognized" in refused.stdout + refused.stderr
    assert echo_as_called(strict, strict.aet.lower()).returncode == 0
    assert "called_ae_not_ours called_ae='SOMEPACS'" in strict.log()


def echo_as_called(server: LightboxProcess, called: str):
    command = [dcmtk("echoscu"), "-aet", "ECHOSCU", "-aec", called, "127.0.0.1", str(server.dicom_port)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_wrong_passwords_from_strangers_cannot_lock_the_owner_out(lightbox: LightboxProcess) -> None:
    """Three wrong passwords used to lock a user out from every address; now each address waits
    for its own, the account-wide wait comes only after a spray from many addresses and spares
    the addresses the user logged in from, and an admin lifts it."""
    admin = first_admin(lightbox)
    assert login_from(lightbox, "127.0.0.1", ADMIN, ADMIN_PASSWORD)[0] == 303  # the vet's own PC
    assert [login_from(lightbox, "127.0.0.2", ADMIN, "wrong")[0] for _ in range(4)] == [401, 401, 401, 429]
    assert login_from(lightbox, "127.0.0.3", ADMIN, ADMIN_PASSWORD)[0] == 303  # another address is not held up
    spray(lightbox, range(10, 20))
    assert login_from(lightbox, "127.0.0.40", ADMIN, ADMIN_PASSWORD)[0] == 429  # account-wide, for new addresses
    users = {u["name"]: u for u in admin.get("/api/users").json()["users"]}
    assert users[ADMIN]["login_wait_s"] > 0
    assert "Allow admin's logins again" in admin.get("/admin").text
    assert admin.api_post(f"/api/users/{ADMIN}/unlock").status_code == 200
    assert login_from(lightbox, "127.0.0.40", ADMIN, ADMIN_PASSWORD)[0] == 303
    spray(lightbox, range(20, 30))
    assert login_from(lightbox, "127.0.0.41", ADMIN, ADMIN_PASSWORD)[0] == 429
    assert login_from(lightbox, "127.0.0.1", ADMIN, ADMIN_PASSWORD)[0] == 303  # never for the owner's own PC


def spray(server: LightboxProcess, hosts: range) -> None:
    """Three wrong passwords from each address: none of them waits yet."""
    for n in hosts:
        assert [login_from(server, f"127.0.0.{n}", ADMIN, "wrong")[0] for _ in range(3)] == [401, 401, 401]


def fill_up(folder: Path) -> Path:
    """Write a file until the file system holds not one more byte (tmpfs allocates on write)."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0")
    return filler


def test_login_and_reading_keep_working_on_a_full_disk(small_tmpfs: Path, lightbox_factory, tmp_path: Path) -> None:
    """A full disk used to give HTTP 500 on every login (the session write), 500 on a wrong
    password (the audit write) and a traceback per association (the device record)."""
    server = lightbox_factory("small", min_free_mb=0)
    assert server.data == small_tmpfs
    assert server.storescu(*make_study(tmp_path / "study", 2)).returncode == 0
    first_admin(server)
    filler = fill_up(small_tmpfs)
    tracebacks = server.log().count("Traceback")
    client = Client(base_url(server))
    assert client.post("/login", data={"name": ADMIN, "password": "wrong"}).status_code == 401
    assert client.post("/login", data={"name": ADMIN, "password": ADMIN_PASSWORD}).status_code == 303
    studies = client.get("/api/studies")
    assert studies.status_code == 200 and len(studies.json()["studies"]) == 1
    assert client.get("/").status_code == 200
    assert server.echoscu().returncode == 0
    assert server.log().count("Traceback") == tracebacks, server.log()[-3000:]
    filler.unlink()
    assert client.get("/api/studies").status_code == 200  # the session outlives the full disk
    assert server.storescu(*make_study(tmp_path / "more", 1, patient_id="AFTER")).returncode == 0


def test_an_upscaling_render_is_bounded(lightbox: LightboxProcess, tmp_path: Path) -> None:
    """A 64 x 64 image asked at 8192 x 8192 as WebP took the main process from 359 to 1,009 MB;
    now the output is at most what a screen shows."""
    tiny = make_study(tmp_path / "tiny", 1, rows=64, columns=64)
    assert lightbox.storescu(*tiny).returncode == 0
    admin = first_admin(lightbox)
    instance = dcmread(tiny[0], stop_before_pixels=True).SOPInstanceUID
    assert lightbox.proc is not None
    before = pss_bytes(lightbox.proc.pid) / 2**20
    for fmt in ("webp", "png", "jpeg"):
        answer = admin.get(f"/api/instances/{instance}/frames/1/rendered?width=8192&height=8192&format={fmt}")
        assert answer.status_code == 200, answer.text[:200]
        assert Image.open(io.BytesIO(answer.content)).size == (2048, 2048)
    grown = pss_bytes(lightbox.proc.pid) / 2**20 - before
    assert grown < 120, f"the main process grew by {grown:.0f} MB"


def open_idle(port: int, sources: list[str], per_source: int) -> list[socket.socket]:
    held = []
    for source in sources:
        for _ in range(per_source):
            sock = socket.socket()
            sock.bind((source, 0))
            sock.connect(("127.0.0.1", port))
            held.append(sock)
    return held


def healthz_answers(server: LightboxProcess) -> bool:
    try:
        return requests.get(base_url(server) + "/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_idle_connections_cannot_shut_the_web_ui(lightbox: LightboxProcess) -> None:
    """100 idle TCP connections used to take every one of waitress's slots (renewable every 120 s):
    /healthz timed out.  Now one address holds at most 32, and near the limit the connection idle
    longest gives way."""
    held = open_idle(lightbox.http_port, ["127.0.0.1"], 150)
    try:
        assert healthz_answers(lightbox)
        held += open_idle(lightbox.http_port, [f"127.0.0.{n}" for n in range(2, 12)], 30)  # 450 in all
        time.sleep(1)
        assert healthz_answers(lightbox)
        assert lightbox.proc is not None
        open_fds = len(list(Path(f"/proc/{lightbox.proc.pid}/fd").iterdir()))
        assert open_fds < 400, open_fds
    finally:
        for sock in held:
            sock.close()


def client_hello() -> bytes:
    """The first flight of a real TLS client (its ClientHello), as bytes to send by hand."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    outgoing = ssl.MemoryBIO()
    client = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def https_healthz_answers(server: LightboxProcess) -> bool:
    try:
        return https_client(server).get("/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.slow
def test_silent_and_stalled_tls_handshakes_cannot_shut_the_web_ui(lightbox: LightboxProcess) -> None:
    """The HTTPS port's variant: 150 connections from one address that never begin TLS, then 300
    from ten others that send half a ClientHello and stall.  The handshake is done in waitress's
    event loop without waiting, so none of them holds anyone up; each counts as idle for the
    connection guard; and one still in its handshake after HANDSHAKE_S seconds is closed."""
    hello = client_hello()
    held = open_idle(lightbox.https_port, ["127.0.0.1"], 150)
    try:
        assert https_healthz_answers(lightbox)
        stalled = open_idle(lightbox.https_port, [f"127.0.0.{n}" for n in range(2, 12)], 30)
        for sock in stalled:
            sock.sendall(hello[: len(hello) // 2])
        held += stalled
        time.sleep(1)
        assert https_healthz_answers(lightbox) and healthz_answers(lightbox)
        assert lightbox.proc is not None
        open_fds = len(list(Path(f"/proc/{lightbox.proc.pid}/fd").iterdir()))
        assert open_fds < 400, open_fds
        # Alone (nothing evicts it), a stalled handshake is closed by its deadline.
        lone = socket.create_connection(("127.0.0.1", lightbox.https_port), timeout=HANDSHAKE_S + 30)
        held.append(lone)
        lone.sendall(hello[:10])
        with contextlib.suppress(ConnectionResetError):
            assert lone.recv(1) == b""
        assert "tls_handshake_timeout address=127.0.0.1" in lightbox.log()
        assert "Traceback" not in lightbox.log()
    finally:
        for sock in held:
            sock.close()
