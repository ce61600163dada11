"""The servers a bench measures and the DCMTK peers around them: Lightbox (`python -m appliance
serve` with this interpreter) and Orthanc on free loopback ports, started and stopped; storescu
to feed them, storescp to receive from them; the HTTP and CLI calls that set them up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.corpus import Corpus
from bench.harness import BENCH_ENV, REPO_ROOT, BenchError, log, tail, with_repo_on_path

STORESCU, STORESCP = "/usr/bin/storescu", "/usr/bin/storescp"  # not pynetdicom's console scripts
ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"  # Debian's orthanc-dicomweb
CALLING_AET = "BENCHSCU"
READY_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass
class RunningServer:
    label: str
    aet: str
    dicom_port: int
    proc: subprocess.Popen
    count_instances: Callable[[], int]
    http_port: int
    https_port: int = 0  # Lightbox's HTTPS port


def check_tools(*tools: str) -> None:
    missing = [tool for tool in tools if not os.access(tool, os.X_OK)]
    if missing:
        raise BenchError(f"missing {', '.join(missing)}: apt-get install -y dcmtk orthanc")


# --------------------------------------------------------------------------- loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def http(url: str, body: bytes | None = None, method: str = "GET", timeout: float = 10.0) -> bytes:
    """One HTTP request to a local server, whatever *_proxy says; the answer's body."""
    request = urllib.request.Request(url, data=body, method=method)
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=timeout) as response:
        return response.read()


def http_get_json(url: str, timeout: float = 5.0) -> Any:
    return json.loads(http(url, timeout=timeout))


def http_put_json(url: str, body: dict) -> None:
    http(url, json.dumps(body).encode(), "PUT")


# --------------------------------------------------------------------------- processes


@contextlib.contextmanager
def managed_process(cmd: Sequence[str], log_path: Path, env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen]:
    """Start cmd in its own session; on exit SIGTERM it, then SIGKILL its process group if it hangs."""
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log(f"{cmd[0]} (pid {proc.pid}) ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_ready(
    proc: subprocess.Popen, name: str, health_url: str, log_path: Path, dicom_port: int | None = None
) -> None:
    """Until ``health_url`` answers JSON (and ``dicom_port``, if any, accepts connections)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"{name} exited with status {proc.returncode} during start-up; its output:\n{tail(log_path)}"
            )
        try:
            http_get_json(health_url, timeout=1.0)
            if dicom_port is None or port_accepts(dicom_port):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise BenchError(f"{name} not ready after {READY_TIMEOUT_S:.0f} s ({health_url}); its output:\n{tail(log_path)}")


# --------------------------------------------------------------------------- Lightbox


def lightbox_env() -> dict[str, str]:
    return with_repo_on_path(BENCH_ENV)


def lightbox_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "appliance", *args]


def check_lightbox_importable() -> None:
    probe = subprocess.run([sys.executable, "-c", "import appliance"], env=lightbox_env(), cwd=REPO_ROOT,
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        raise BenchError(
            f"Lightbox is not importable with {sys.executable} from {REPO_ROOT} ({last}).\n"
            "  Run the bench with Lightbox's venv (.venv/bin/python -m bench...),\n"
            "  or benchmark Orthanc alone with --servers orthanc."
        )


def lightbox_cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run `lightbox ARGS` to its end: its standard output, or a BenchError with its errors."""
    done = subprocess.run(lightbox_command(*args), input=stdin, text=True, capture_output=True,
                          env=env or lightbox_env(), cwd=REPO_ROOT)  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"lightbox {' '.join(args[:2])} failed with status {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def lightbox_import(data_dir: Path, source: Path, log_path: Path) -> None:
    """`lightbox import` a folder (it recurses) into data_dir, in one process."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as out:
        rc = subprocess.run(lightbox_command("import", "--data", str(data_dir), str(source)), stdout=out,
                            stderr=subprocess.STDOUT, env=lightbox_env(), cwd=REPO_ROOT).returncode  # fmt: skip
    if rc != 0:
        raise BenchError(f"`appliance import` failed with status {rc}; its output:\n{tail(log_path)}")


@contextlib.contextmanager
def lightbox_server(
    run_dir: Path, label: str, data_dir: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    data_dir = data_dir or run_dir / "lightbox-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port, https_port = free_port(), free_port(), free_port()
    cmd = lightbox_command("serve", "--data", str(data_dir), "--dicom-port", str(dicom_port),
                           "--http-port", str(http_port), "--https-port", str(https_port),
                           "--dicom-tls-port", str(free_port()), "--host", "127.0.0.1",
                           "--aet", "LIGHTBOX")  # fmt: skip
    health = f"http://127.0.0.1:{http_port}/healthz"
    log_path = run_dir / f"{label}.log"

    def count() -> int:
        body = http_get_json(health)
        try:
            return int(body["counts"]["instances"])
        except (KeyError, TypeError, ValueError):
            raise BenchError(f"Lightbox /healthz has no counts.instances: {body!r}") from None

    with managed_process(cmd, log_path, env or lightbox_env(), REPO_ROOT) as proc:
        wait_ready(proc, "Lightbox", health, log_path, dicom_port)
        yield RunningServer(label, "LIGHTBOX", dicom_port, proc, count, http_port, https_port)


# --------------------------------------------------------------------------- Orthanc


@contextlib.contextmanager
def orthanc_server(run_dir: Path, label: str, plugins: Sequence[str] = (), **settings: Any) -> Iterator[RunningServer]:
    """Orthanc on free loopback ports; ``plugins``: shared objects to load (e.g. DICOMWEB_PLUGIN);
    ``settings``: configuration options besides (or instead of) the bench's own."""
    dicom_port, http_port = free_port(), free_port()
    config = {
        "Name": "lightbox-bench",
        "StorageDirectory": str(run_dir / "orthanc-storage"),
        "IndexDirectory": str(run_dir / "orthanc-index"),
        "StorageCompression": False,
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "Plugins": list(plugins),
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        **settings,
    }
    config_path = run_dir / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    base = f"http://127.0.0.1:{http_port}"
    log_path = run_dir / f"{label}.log"

    def count() -> int:
        return int(http_get_json(f"{base}/statistics")["CountInstances"])

    with managed_process([ORTHANC, str(config_path)], log_path, BENCH_ENV, run_dir) as proc:
        wait_ready(proc, "Orthanc", f"{base}/system", log_path, dicom_port)
        yield RunningServer(label, "ORTHANC", dicom_port, proc, count, http_port)


def orthanc_modality(server: RunningServer, name: str, aet: str, port: int) -> None:
    """Make Orthanc know a DICOM peer on loopback (it answers and sends only to those it knows)."""
    http_put_json(
        f"http://127.0.0.1:{server.http_port}/modalities/{name}", {"AET": aet, "Host": "127.0.0.1", "Port": port}
    )


# --------------------------------------------------------------------------- DCMTK peers


def storescu(
    server: RunningServer, inputs: list[list[str]], log_dir: Path, timeout: float | None = None, nagle: bool = False
) -> float:
    """One DCMTK storescu per argument list (files, or +sd +r and folders), all at once, each
    its own association; the wall time until all are done (killed, and a BenchError, if that
    takes more than ``timeout`` seconds).  ``nagle``: storescu as packaged, Nagle's algorithm on."""
    logs = [log_dir / f"storescu-{i}.log" for i in range(len(inputs))]
    env = {k: v for k, v in BENCH_ENV.items() if k != "TCP_NODELAY"} if nagle else BENCH_ENV
    procs = []
    started = time.perf_counter()
    for args, log_path in zip(inputs, logs, strict=True):
        cmd = [STORESCU, "-aet", CALLING_AET, "-aec", server.aet, "127.0.0.1", str(server.dicom_port), *args]
        with open(log_path, "wb") as out:
            procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env))
    try:
        codes = [p.wait(None if timeout is None else max(0.0, started + timeout - time.perf_counter())) for p in procs]
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
            proc.wait()
        raise BenchError(f"storescu to {server.label} not done after {timeout:.0f} s") from None
    wall = time.perf_counter() - started
    for code, log_path in zip(codes, logs, strict=True):
        if code != 0:
            raise BenchError(f"storescu to {server.label} exited with status {code}; its output:\n{tail(log_path)}")
    return wall


def send(server: RunningServer, corpus: Corpus, associations: int, log_dir: Path, nagle: bool = False) -> float:
    """C-STORE a corpus over ``associations`` parallel associations: the whole folder for one,
    the files dealt out in runs for several; the wall time."""
    if associations == 1:
        return storescu(server, [["+sd", "+r", str(corpus.dicom_dir)]], log_dir, nagle=nagle)
    size = -(-len(corpus.files) // associations)
    parts = [[str(p) for p in corpus.files[i : i + size]] for i in range(0, len(corpus.files), size)]
    return storescu(server, parts, log_dir, nagle=nagle)


def wait_for_count(server: RunningServer, expected: int, at_least: bool = False) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        got = server.count_instances()
        if got == expected or (at_least and got > expected):
            return
        if got > expected or time.monotonic() > deadline:
            raise BenchError(f"{server.label} holds {got} instances, expected {expected}")
        time.sleep(0.1)


@contextlib.contextmanager
def storescp(run_dir: Path, out: Path, aet: str) -> Iterator[int]:
    """DCMTK storescp receiving into ``out`` (a C-MOVE or forwarding destination); its port."""
    port = free_port()
    out.mkdir(parents=True, exist_ok=True)
    cmd = [STORESCP, "-aet", aet, "-od", str(out), str(port)]
    with managed_process(cmd, run_dir / "storescp.log", BENCH_ENV, run_dir) as proc:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not port_accepts(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(
                    f"storescp did not start on port {port}; its output:\n{tail(run_dir / 'storescp.log')}"
                )
            time.sleep(0.05)
        yield port
