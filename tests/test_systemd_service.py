"""Lightbox as a systemd service, under a real systemd as PID 1: a Debian 12 machine booted in
systemd-nspawn (support/machine.py), Lightbox installed there by README's "Run as a service"
commands from wheels made here, and everything asked from outside the machine, over its own
network: DICOM on ports 104 and 11112, the web on 80 and 443 (HTTPS), the watchdog, kill -9,
stop, the sandbox, a backup run by the service's child process in it.

The tests share one boot and run in this order; each leaves the service running, the last one
stops it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from support.dicomgen import make_study
from support.imagegen import corpus_file
from support.machine import ADDRESS, HOST_ADDRESS, Machine, rootfs, wheels
from support.netns import private_network
from support.procmem import holds
from support.s3servers import ACCESS_KEY, SECRET_KEY, MotoS3
from support.tlsfiles import served_fingerprint
from support.tools import dcmtk
from support.web import ADMIN, ADMIN_PASSWORD, SETUP_CODE, Client

# A machine boots: about 2 minutes in all (the first time, 1 more to make the root file system).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

README = Path(__file__).resolve().parents[1] / "README.md"
SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"
CONFIG = "/etc/lightbox/lightbox.toml"
DATA = "/var/lib/lightbox"
LIGHTBOX = "/opt/lightbox/venv/bin/lightbox"
RESTART_WITHIN = 180.0  # seconds: WatchdogSec 30 + the abort + RestartSec 5 + the start


def readme_service_commands() -> list[str]:
    section = README.read_text().split("## Run as a service", 1)[1]
    block = re.search(r"```sh\n(.*?)\n```", section, re.S)
    assert block, "README.md has no commands under 'Run as a service'"
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    """The booted machine with Lightbox installed and running as README says."""
    work = tmp_path_factory.mktemp("machine")
    started = time.monotonic()
    lower = rootfs()
    print(f"rootfs ready in {time.monotonic() - started:.0f} s")
    made = wheels(work / "wheels")  # before the private network: pip may need the package index
    with private_network():
        box = Machine(lower, work / "boot")
        try:
            src = box.root / "root" / "src"
            shutil.copytree(made.parent, src / "wheels")
            shutil.copy(made, src)
            shutil.copytree(SYSTEMD, src / "systemd")
            # For the sandbox test: a home with a readable file, a folder anyone may write to.
            (box.root / "home" / "clinic").mkdir(parents=True)
            (box.root / "home" / "clinic" / "notes.txt").write_text("not for Lightbox\n")
            (box.root / "srv" / "open").mkdir(parents=True)
            (box.root / "srv" / "open").chmod(0o1777)
            started = time.monotonic()
            box.boot()
            print(f"booted in {time.monotonic() - started:.0f} s")
            started = time.monotonic()
            offline = ("PIP_NO_INDEX=1", "PIP_FIND_LINKS=/root/src/wheels")
            for line in readme_service_commands():
                box.run("sh", "-c", f"cd /root/src && {line}", env=offline, timeout=600)
            print(f"installed and started in {time.monotonic() - started:.0f} s")
            yield box
        finally:
            box.shutdown()


def show(machine: Machine, prop: str) -> str:
    return machine.run("systemctl", "show", "-P", prop, "lightbox.service").stdout.strip()


def journal(machine: Machine) -> str:
    return machine.run("journalctl", "-u", "lightbox", "--no-pager", "-o", "cat").stdout


def healthz() -> dict:
    with urllib.request.urlopen(f"http://{ADDRESS}/healthz", timeout=10) as answer:
        return json.load(answer)


def wait_restarted(machine: Machine, restarts_before: int) -> None:
    """Until systemd has restarted the service and it is ready again (bounded)."""
    deadline = time.monotonic() + RESTART_WITHIN
    while time.monotonic() < deadline:
        if int(show(machine, "NRestarts")) > restarts_before and show(machine, "ActiveState") == "active":
            return
        time.sleep(1)
    raise AssertionError(f"not restarted within {RESTART_WITHIN:.0f} s:\n{journal(machine)[-3000:]}")


def main_pid(machine: Machine) -> int:
    """The service's main process, as the host numbers it."""
    return machine.host_pid(int(show(machine, "MainPID")))


def children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def echoscu(port: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [dcmtk("echoscu"), "-aec", "LIGHTBOX", ADDRESS, str(port)], capture_output=True, text=True, timeout=60
    )


def dcmsend(port: int, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [dcmtk("dcmsend"), "-aet", "MODALITY", "-aec", "LIGHTBOX", ADDRESS, str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def indexed_uids(machine: Machine) -> set[str]:
    """The index read straight from the machine's disk (read-only; WAL readers are fine)."""
    index = machine.root / DATA.lstrip("/") / "index.sqlite"
    con = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=30)
    try:
        return {uid for (uid,) in con.execute("SELECT sop_uid FROM instance")}
    finally:
        con.close()


def test_installed_units_verify(machine: Machine) -> None:
    units = [f"/etc/systemd/system/{unit}" for unit in ("lightbox.service", "lightbox-http.socket",
                                                       "lightbox-https.socket", "lightbox-dicom.socket",
                                                       "lightbox-dicom-tls.socket")]  # fmt: skip
    result = machine.run("systemd-analyze", "verify", *units, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stdout + result.stderr
    assert show(machine, "ActiveState") == "active" and show(machine, "User") == "lightbox"


def test_dicom_on_104_and_11112_and_the_web_on_80_and_443(machine: Machine, tmp_path: Path) -> None:
    assert echoscu(104).returncode == 0 and echoscu(11112).returncode == 0
    # HTTPS on 443 (lightbox-https.socket), with the certificate the service made in its state
    # directory, whose fingerprint the journal tells.
    served = served_fingerprint(443, ADDRESS)
    assert f"certificate_sha256={served}" in journal(machine)
    assert "https_listening" in journal(machine) and "from=bound" not in journal(machine)
    before = healthz()["counts"]["instances"]
    first = make_study(tmp_path / "a", 3, patient_id="SVC-104")
    second = make_study(tmp_path / "b", 2, patient_id="SVC-11112")
    for port, files in ((104, first), (11112, second)):
        sent = dcmsend(port, *files)
        assert sent.returncode == 0, sent.stdout + sent.stderr
    assert healthz()["counts"]["instances"] == before + 5
    assert {str(dcmread(f).SOPInstanceUID) for f in first + second} <= indexed_uids(machine)


def test_dicom_tls_on_2762_shows_the_certificate_made_on_the_box(machine: Machine) -> None:
    served = ssl.get_server_certificate((ADDRESS, 2762), timeout=30)
    made = machine.run("cat", "/var/lib/lightbox/tls/lightbox.crt").stdout
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(made)
    assert "dicom-tls_listening" in journal(machine) and "from=systemd" in journal(machine)


def test_setup_code_in_the_journal_makes_the_first_admin(machine: Machine) -> None:
    """The code is in `journalctl -u lightbox`; with it the first admin is made (Argon2id's
    cffi under the sandbox), who then sees frames of compressed images rendered (pylibjpeg's
    decoders, numpy and Pillow under the sandbox)."""
    codes = SETUP_CODE.findall(journal(machine))
    assert codes, journal(machine)[-3000:]
    # Lines carry their priority: the setup code is a warning, start-up lines are not.
    warnings = machine.run("journalctl", "-u", "lightbox", "-p", "warning", "--no-pager", "-o", "cat").stdout
    assert codes[-1] in warnings and "http_listening" not in warnings and "http_listening" in journal(machine)
    client = Client(f"http://{ADDRESS}")
    answer = client.post(
        "/setup", data={"code": codes[-1], "name": ADMIN, "password": ADMIN_PASSWORD, "password2": ADMIN_PASSWORD}
    )
    assert answer.status_code == 303, answer.text
    assert client.login().status_code == 303
    compressed = [corpus_file(name) for name in ("JPEG2000.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm")]
    sent = dcmsend(104, *compressed)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    for path in compressed:
        sop = dcmread(path, stop_before_pixels=True).SOPInstanceUID
        frame = client.get(f"/api/instances/{sop}/frames/1/rendered")
        assert frame.status_code == 200 and frame.headers["Content-Type"] == "image/jpeg", (path.name, frame.text)


def test_status_says_studies_and_backup(machine: Machine) -> None:
    """`systemctl status` tells the count of the last health round (one every 10 s)."""
    expected = f"serving, {healthz()['counts']['studies']:,} studies, backup not set up"
    deadline = time.monotonic() + 30
    while (status := show(machine, "StatusText")) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status == expected


def test_sandbox_keeps_the_service_in_its_state_directory(machine: Machine) -> None:
    """In the running service's own namespaces and as its user: /home is out of reach and only
    the state directory is writable.  The same user outside the service can do both, so the
    sandbox is what stops it."""
    pid = int(show(machine, "MainPID"))
    attempt = "import sys; open(sys.argv[1], sys.argv[2]).close()"
    as_service = {"target": pid, "user": "lightbox", "check": False}
    readable, writable = "/home/clinic/notes.txt", "/srv/open/lightbox-was-here"
    assert machine.run("python3", "-c", attempt, readable, "r", user="lightbox", check=False).returncode == 0
    assert machine.run("python3", "-c", attempt, writable, "w", user="lightbox", check=False).returncode == 0
    read = machine.run("python3", "-c", attempt, readable, "r", **as_service)
    assert read.returncode != 0 and "Permission denied" in read.stderr, read.stderr
    wrote = machine.run("python3", "-c", attempt, "/srv/open/from-the-service", "w", **as_service)
    assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr, wrote.stderr
    for path in ("/etc/lightbox/lightbox.toml", "/opt/lightbox/venv/bin/lightbox"):
        assert machine.run("python3", "-c", attempt, path, "a", **as_service).returncode != 0, path
    own = machine.run("python3", "-c", attempt, f"{DATA}/sandbox-check", "w", **as_service)
    assert own.returncode == 0, own.stderr
    machine.run("rm", f"{DATA}/sandbox-check")


# Every native dependency at work, in a oneshot unit with lightbox.service's own sandbox.
SANDBOX_CHECK = """
import ctypes, mmap, os, sys
from pathlib import Path
import argon2, ifaddr, pydicom, pydicom.data, pyrage
hasher = argon2.PasswordHasher()
assert hasher.verify(hasher.hash("correct horse battery"), "correct horse battery")
key = pyrage.x25519.Identity.generate()
assert pyrage.decrypt(pyrage.encrypt(b"pixels" * 1000, [key.to_public()]), [key]) == b"pixels" * 1000
files = Path(pydicom.data.__file__).parent / "test_files"
for name in ("JPEG2000.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm", "JPGExtended.dcm"):
    assert pydicom.dcmread(files / name).pixel_array.size > 0, name
assert ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 7)() == 7  # a libffi closure
assert ifaddr.get_adapters()  # netlink
# ... and the sandbox is in force: each of these must be refused.
def refused(attempt):
    try:
        attempt()
    except OSError:
        return True
    return False
held = {
    "ProtectSystem": refused(lambda: open("/etc/lightbox/written", "w")),
    "MemoryDenyWriteExecute": refused(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)),
    "SystemCallFilter": refused(lambda: os.setpriority(os.PRIO_PROCESS, 0, 5)),  # @resources; anyone may, else
}
if not all(held.values()):
    sys.exit(f"the sandbox did not hold: {held}")
print("sandbox-check ok")
"""
NOT_SANDBOX = ("Type=", "NotifyAccess=", "ExecStart=", "Sockets=", "TimeoutStartSec=", "WatchdogSec=", "Restart")


def test_native_dependencies_work_in_the_sandbox(machine: Machine) -> None:
    """argon2-cffi, pyrage, pylibjpeg's decoders, numpy, ctypes and netlink under the unit's
    sandbox (MemoryDenyWriteExecute, the system call filter, the address families, ...)."""
    service = (SYSTEMD / "lightbox.service").read_text().split("[Service]")[1].split("[Install]")[0]
    sandbox = [line for line in service.splitlines() if not line.startswith(NOT_SANDBOX)]
    unit = ["[Service]", "Type=oneshot", "ExecStart=/opt/lightbox/venv/bin/python3 /usr/local/lib/sandbox-check.py"]
    (machine.root / "usr/local/lib/sandbox-check.py").write_text(SANDBOX_CHECK)
    (machine.root / "etc/systemd/system/lightbox-sandbox-check.service").write_text("\n".join(unit + sandbox))
    machine.run("systemctl", "daemon-reload")
    started = machine.run("systemctl", "start", "lightbox-sandbox-check.service", check=False, timeout=300)
    said = machine.run("journalctl", "-u", "lightbox-sandbox-check", "--no-pager", "-o", "cat").stdout
    assert started.returncode == 0 and "sandbox-check ok" in said, started.stderr + said
    assert "MemoryDenyWriteExecute=yes" in sandbox and "SystemCallFilter=@system-service" in sandbox


def test_backup_runs_in_a_child_process_under_the_sandbox(machine: Machine) -> None:
    """The Backup page's set-up, "Back up now" and the verification that follows reach the
    bucket through `python -m appliance.backup`, a child of the service under the unit's
    sandbox (MemoryDenyWriteExecute, the system call filter, ProtectProc, ...); the service's
    own process never loads botocore."""
    s3 = MotoS3(host=HOST_ADDRESS).start()
    try:
        s3.client().create_bucket(Bucket="appliance")
        admin = Client(f"http://{ADDRESS}")
        assert admin.login().status_code == 303
        form = {
            "endpoint": s3.endpoint, "bucket": "appliance", "prefix": "box", "region": "us-east-1",
            "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY, "addressing": "path",
            "passphrase": "a long backup passphrase", "passphrase2": "a long backup passphrase",
            "backup_schedule": "manual", "backup_time": "02:00", "backup_delay": "300",
        }  # fmt: skip
        answer = admin.api_post("/api/backup/setup", **form)
        assert answer.status_code == 200, answer.text + journal(machine)[-3000:]
        deadline = time.monotonic() + 120
        for ask, done in (("run", "last_run"), ("verify", "last_verify")):
            assert admin.api_post(f"/api/backup/{ask}").status_code == 202
            while (info := admin.get("/api/backup").json())["status"][done] is None or any(
                info["activity"][busy] for busy in ("running", "asked")
            ):
                assert time.monotonic() < deadline, journal(machine)[-3000:]
                time.sleep(0.5)
        status = info["status"]
        assert status["last_run"]["ok"] and status["last_verify"]["ok"], status
        assert status["objects"] == healthz()["counts"]["instances"] and status["pending_objects"] == 0
        botocore = machine.run(f"{os.path.dirname(LIGHTBOX)}/python3", "-c",
                               "import botocore, os; print(os.path.dirname(botocore.__file__))").stdout.strip()  # fmt: skip
        assert not holds(main_pid(machine), f"{botocore}/client.py".encode())
        assert "backup_run ok=True" in journal(machine)
    finally:
        s3.stop()


def test_kill9_during_a_cstore_stream_loses_nothing_acknowledged(machine: Machine, tmp_path: Path) -> None:
    files = make_study(tmp_path / "stream", 300, rows=128, columns=128, patient_id="SVC-KILL")
    uid_of = {str(f): str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    restarts = int(show(machine, "NRestarts"))
    log = tmp_path / "storescu.log"
    with open(log, "wb") as out:
        sender = subprocess.Popen(
            [dcmtk("storescu"), "-v", "-aet", "MODALITY", "-aec", "LIGHTBOX", ADDRESS, "104", *map(str, files)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while len(acknowledged(log)) < 30 and sender.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sender.poll() is None, "the stream ended before the kill:\n" + log.read_text()[-2000:]
        os.kill(main_pid(machine), signal.SIGKILL)
        sender.wait(120)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    acked = {uid_of[f] for f in acknowledged(log)}
    assert 30 <= len(acked) < len(files), f"{len(acked)} acknowledged"
    wait_restarted(machine, restarts)
    assert "code=killed, status=9/KILL" in machine.run("journalctl", "-u", "lightbox", "--no-pager").stdout
    assert acked <= indexed_uids(machine), "acknowledged images lost"
    verified = machine.run(LIGHTBOX, "verify", "--config", CONFIG, user="lightbox", check=False, timeout=300)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def acknowledged(log: Path) -> list[str]:
    """The files storescu sent and saw a Success response for, from its -v log."""
    done, current = [], None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("I: Sending file: "):
            current = line.removeprefix("I: Sending file: ").strip()
        elif line.startswith("I: Received Store Response (Success)") and current:
            done.append(current)
            current = None
    return done


def test_frozen_main_process_is_restarted_by_the_watchdog(machine: Machine) -> None:
    restarts = int(show(machine, "NRestarts"))
    os.kill(main_pid(machine), signal.SIGSTOP)
    wait_restarted(machine, restarts)
    assert "Watchdog timeout" in machine.run("journalctl", "-u", "lightbox", "--no-pager").stdout
    log = journal(machine)
    assert "Fatal Python error: Aborted" in log
    assert 'File "' in log.rsplit("Fatal Python error: Aborted", 1)[1]  # faulthandler: where each thread was
    assert echoscu(104).returncode == 0 and healthz()["status"] == "ok"


def test_frozen_dicom_workers_starve_the_watchdog(machine: Machine) -> None:
    """The main process runs on, but its health rounds fail: the pings stop, STATUS= says why,
    and systemd restarts the service.  A timer that pinged regardless would not."""
    restarts = int(show(machine, "NRestarts"))
    workers = children(main_pid(machine))
    assert len(workers) == 1  # dicom_workers = 1 in the appliance's lightbox.toml
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 60
    while not show(machine, "StatusText").startswith("unhealthy") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "DICOM port 104 does not answer" in show(machine, "StatusText")
    wait_restarted(machine, restarts)
    assert echoscu(11112).returncode == 0


def test_stop_is_clean_and_within_timeout(machine: Machine) -> None:
    """`systemctl stop`: SIGTERM, transfers finish, the process exits 0 by itself (no timeout, no kill)."""
    machine.run("systemctl", "stop", "lightbox.service", timeout=120)
    assert show(machine, "ActiveState") == "inactive"
    assert show(machine, "Result") == "success" and show(machine, "ExecMainStatus") == "0"
    since_stop = journal(machine).rsplit("Stopping lightbox.service", 1)[1]
    assert "INFO lightbox.service: stopped" in since_stop and "Deactivated successfully" in since_stop
    assert "Killing" not in since_stop and "timed out" not in since_stop
