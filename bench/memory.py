"""Memory on a 1 GB box: the peak PSS of every `lightbox` command (budget 256 MB each), and of
the service, all its processes, under a mixed load (budget 200 MB), side by side with Orthanc
under the same load.

Commands run one after another on one data folder, as an admin would, each sampled every 20 ms
(PSS of it and its children, and VmHWM, the kernel's own peak RSS, which no sampling misses).
The service's load, for ``--duration`` seconds: C-STORE of a CT series over two associations
(again and again: after the first pass they are duplicates, still received whole), C-FIND and
C-GET in loops, three web clients (study list, study page, thumbnails, rendered CT and 10 MB
radiograph frames, a study ZIP) and, for Lightbox, bursts of eight logins (Argon2) and a
continuous backup to moto's S3 server.  Orthanc gets the same DICOM load and the nearest REST
calls (its /preview for a thumbnail, /archive for the ZIP); it has no logins or backup.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from bench import corpus, harness, servers, wire
from bench.harness import MB, REPO_ROOT, BenchError, log
from bench.procstat import CommandRun, ServerSampler, by_role, descendants, pss_bytes, run_sampled
from bench.render import Client as RestClient
from bench.web import PASSWORD, USER, Session

TESTS_DIR = REPO_ROOT / "tests"  # support/s3servers.py: moto's S3 server, as the backup tests use it
sys.path.insert(0, str(TESTS_DIR))
from support.s3servers import ACCESS_KEY, SECRET_KEY, MotoS3  # noqa: E402

COMMAND_BUDGET, SERVICE_BUDGET = 256 * MB, 200 * MB
SCU_AET = "BENCHSCU"
GETSCU = "/usr/bin/getscu"
FIND_MODEL = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root C-FIND
PASSPHRASE = "benchmark passphrase, not secret"
LOGIN_BURST, LOGIN_EVERY_S = 8, 15.0


# --------------------------------------------------------------------------- the corpus


def uids(path: Path) -> Dataset:
    return dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SeriesInstanceUID",
                                                                  "SOPInstanceUID", "PatientID"])  # fmt: skip


def build(args: argparse.Namespace) -> tuple[corpus.Corpus, corpus.Corpus, corpus.Corpus]:
    """The preloaded CT series and radiographs, and the CT series sent during the load."""
    rng = np.random.default_rng(20261207)
    return (
        corpus.ct_series(args.slices, rng),
        corpus.radiographs(args.radiographs, rng),
        corpus.ct_series(args.slices, rng, label="LIVE"),
    )


# --------------------------------------------------------------------------- commands


def lightbox_env(s3: MotoS3) -> dict[str, str]:
    return {**servers.lightbox_env(), "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "LIGHTBOX_DISCOVERY": "false"}  # fmt: skip


def command_plan(data: Path, work: Path, ct: corpus.Corpus, dx: corpus.Corpus, peer_port: int,
                 endpoint: str) -> list[tuple[str, list[str], str | None]]:  # fmt: skip
    """Every `lightbox` subcommand but serve, in an order that makes sense: (label, args, stdin)."""
    d = ["--data", str(data)]
    ct_study = str(uids(ct.files[0]).StudyInstanceUID)
    first, second, third = (uids(p) for p in dx.files[:3])
    passphrase = work / "passphrase"
    passphrase.write_text(PASSPHRASE)
    bucket = ["--bucket", "memory", "--endpoint", endpoint]
    return [
        ("import", ["import", *d, str(ct.dicom_dir), str(dx.dicom_dir)], None),
        ("verify", ["verify", *d], None),
        ("rebuild-index", ["rebuild-index", *d], None),
        ("user add", ["user", "add", "admin", "--role", "admin", "--password-stdin", *d], PASSWORD + "\n"),
        ("user passwd", ["user", "passwd", "admin", "--password-stdin", *d], PASSWORD + " 2\n"),
        ("user add", ["user", "add", USER, "--role", "admin", "--password-stdin", *d], PASSWORD + "\n"),
        ("user list", ["user", "list", *d], None),
        ("user remove", ["user", "remove", "admin", *d], None),
        ("node add", ["node", "add", "--aet", "PEER", "--host", "127.0.0.1", "--port", str(peer_port), *d], None),
        ("node list", ["node", "list", *d], None),
        ("node echo", ["node", "echo", "PEER", *d], None),
        ("device list", ["device", "list", *d], None),
        ("device discovered", ["device", "discovered", *d], None),
        ("device policy", ["device", "policy", *d], None),
        ("device rename", ["device", "rename", "MODALITY", "Ultrasound 1", *d], None),
        ("device edit", ["device", "edit", "MODALITY", "--host", "127.0.0.1", "--port", str(peer_port), *d], None),
        ("device echo", ["device", "echo", "MODALITY", *d], None),
        ("device approve", ["device", "approve", "MODALITY", *d], None),
        ("device ignore", ["device", "ignore", "MODALITY", *d], None),
        ("forward add", ["forward", "add", "--to", "PEER", *d], None),
        ("forward list", ["forward", "list", *d], None),
        ("forward queue", ["forward", "queue", *d], None),
        ("forward remove", ["forward", "remove", "1", *d], None),
        ("node remove", ["node", "remove", "PEER", *d], None),
        ("patient show", ["patient", "show", ct_study, *d], None),
        ("patient edit", ["patient", "edit", ct_study, "--name", "RENAMED^PATIENT", *d], None),
        ("patient merge", ["patient", "merge", str(first.StudyInstanceUID), str(second.StudyInstanceUID), *d], None),
        ("delete", ["delete", "study", str(third.StudyInstanceUID), "--confirm", str(third.PatientID), *d], None),
        ("backup init", ["backup", "init", *bucket, "--passphrase-file", str(passphrase), *d], None),
        ("backup run", ["backup", "run", *d], None),
        ("backup status", ["backup", "status", *d], None),
        ("backup verify", ["backup", "verify", *d], None),
        (
            "restore",
            [
                "restore",
                "--from-bucket",
                "memory",
                "--endpoint",
                endpoint,
                "--to",
                str(work / "restored"),
                "--passphrase-file",
                str(passphrase),
            ],
            None,
        ),  # fmt: skip
    ]


def learn_a_device(work: Path, data: Path) -> None:
    """Serve the data folder a moment and C-ECHO it as MODALITY, so the device commands have one."""
    with servers.lightbox_server(work, "learn", data_dir=data) as server:
        subprocess.run(["/usr/bin/echoscu", "-aet", "MODALITY", "-aec", server.aet, "127.0.0.1",
                        str(server.dicom_port)], check=True, env=harness.BENCH_ENV)  # fmt: skip


def measure_commands(args: argparse.Namespace, work: Path, s3: MotoS3) -> list[tuple[str, CommandRun]]:
    ct, dx, _ = build(args)
    s3.client().create_bucket(Bucket="memory")
    data = work / "commands-data"
    env = lightbox_env(s3)
    runs = []
    with servers.lightbox_server(work, "peer") as peer:
        plan = command_plan(data, work, ct, dx, peer.dicom_port, s3.endpoint)
        for label, cmd_args, stdin in plan:
            if label == "device list":
                learn_a_device(work, data)
            log(f"lightbox {label}")
            run = run_sampled(servers.lightbox_command(*cmd_args), stdin_text=stdin, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env, cwd=REPO_ROOT)  # fmt: skip
            if run.returncode != 0:
                raise BenchError(f"lightbox {' '.join(cmd_args[:3])} failed ({run.returncode})")
            print(f"command  {label:<18} peak PSS {run.peak_pss / MB:6.1f} MB  peak RSS {run.peak_hwm / MB:6.1f} MB  "
                  f"{run.wall_s:6.1f} s", flush=True)  # fmt: skip
            runs.append((label, run))
    return runs


# --------------------------------------------------------------------------- the service under load


class Load:
    """Threads that keep a server busy until ``stop``; each counts its work, the first error stops all."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.counts: dict[str, int] = {}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def add(self, name: str, step: Callable[[], None], pause: float = 0.0) -> None:
        def loop() -> None:
            while not self.stop.is_set():
                try:
                    step()
                except Exception as exc:  # reported at the end: one broken client must not hide
                    with self._lock:
                        self.errors.append(f"{name}: {exc}")
                    self.stop.set()
                    return
                with self._lock:
                    self.counts[name] = self.counts.get(name, 0) + 1
                self.stop.wait(pause)

        self._threads.append(threading.Thread(target=loop, name=name, daemon=True))

    def run(self, seconds: float) -> None:
        for thread in self._threads:
            thread.start()
        self.stop.wait(seconds)
        self.stop.set()
        for thread in self._threads:
            thread.join()
        if self.errors:
            raise BenchError("; ".join(self.errors))


def dicom_load(load: Load, server: servers.RunningServer, live: corpus.Corpus, study_uid: str, work: Path) -> None:
    half = len(live.files) // 2
    for n, part in enumerate((live.files[:half], live.files[half:])):
        log_dir = work / f"store-{n}"
        log_dir.mkdir(exist_ok=True)

        def store(files: Sequence[Path] = part, logs: Path = log_dir) -> None:
            servers.storescu(server, [[str(f) for f in files]], logs)

        load.add(f"store{n}", store)

    def find() -> None:
        query = Dataset()
        query.QueryRetrieveLevel, query.PatientName, query.StudyInstanceUID = "STUDY", "BENCH*", ""
        with wire.FindClient("127.0.0.1", server.dicom_port, SCU_AET, server.aet, FIND_MODEL) as client:
            for _ in range(20):
                *_, final = client.find(wire.encode_identifier(query))
                if final != 0:
                    raise BenchError(f"C-FIND ended with 0x{final:04X}")

    def get() -> None:
        out = work / "get"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        cmd = [GETSCU, "-S", "-od", str(out), "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
               "-aet", SCU_AET, "-aec", server.aet, "127.0.0.1", str(server.dicom_port)]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, env=harness.BENCH_ENV)

    load.add("find", find, pause=0.5)
    load.add("get", get, pause=1.0)


def web_paths_lightbox(ct: Dataset, dx: Dataset) -> list[str]:
    return [
        "/api/studies?limit=50", f"/studies/{ct.StudyInstanceUID}", f"/api/series/{ct.SeriesInstanceUID}/thumbnail",
        f"/api/series/{dx.SeriesInstanceUID}/thumbnail", f"/api/instances/{ct.SOPInstanceUID}/frames/1/rendered",
        f"/api/instances/{dx.SOPInstanceUID}/frames/1/rendered",
        f"/api/instances/{dx.SOPInstanceUID}/frames/1/rendered?width=1024&height=1024",
        f"/api/studies/{ct.StudyInstanceUID}/archive.zip",
    ]  # fmt: skip


def orthanc_id(port: int, uid: str) -> str:
    found = json.loads(servers.http(f"http://127.0.0.1:{port}/tools/lookup", uid.encode(), "POST"))
    return found[0]["ID"]


def web_paths_orthanc(port: int, ct: Dataset, dx: Dataset) -> list[str]:
    study, ct_sop, dx_sop = (orthanc_id(port, u) for u in (ct.StudyInstanceUID, ct.SOPInstanceUID, dx.SOPInstanceUID))
    return [
        "/studies?expand&limit=50&since=0", f"/studies/{study}", f"/instances/{ct_sop}/preview", f"/instances/{dx_sop}/preview",
        f"/instances/{ct_sop}/frames/0/rendered", f"/instances/{dx_sop}/frames/0/rendered",
        f"/instances/{dx_sop}/frames/0/rendered?width=1024&height=1024", f"/studies/{study}/archive",
    ]  # fmt: skip


def web_load(load: Load, get: Callable[[], Callable[[str], bytes]], paths: Sequence[str], clients: int) -> None:
    for n in range(clients):
        getter: list[Callable[[str], bytes]] = []

        def browse(n: int = n, getter: list = getter) -> None:
            if not getter:
                getter.append(get())
            for path in paths[n % len(paths) :] + paths[: n % len(paths)]:
                getter[0](path)

        load.add(f"web{n}", browse)


def prepare_lightbox(work: Path, data: Path, ct: corpus.Corpus, dx: corpus.Corpus, s3: MotoS3, backup: bool) -> None:
    servers.lightbox_import(data, ct.dicom_dir, work / "import.log")
    servers.lightbox_import(data, dx.dicom_dir, work / "import.log")
    d = ["--data", str(data)]
    servers.lightbox_cli("user", "add", USER, "--role", "admin", "--password-stdin", *d, stdin=PASSWORD + "\n")
    servers.lightbox_cli("node", "add", "--aet", SCU_AET, "--host", "127.0.0.1", "--port", "1", "--allow", "find,get",
                         *d)  # fmt: skip
    if backup:
        s3.client().create_bucket(Bucket="service")
        (work / "passphrase").write_text(PASSPHRASE)
        servers.lightbox_cli("backup", "init", "--bucket", "service", "--endpoint", s3.endpoint, "--passphrase-file",
                             str(work / "passphrase"), *d, env=lightbox_env(s3))  # fmt: skip


@contextlib.contextmanager
def started(kind: str, work: Path, args: argparse.Namespace, s3: MotoS3) -> Iterator[servers.RunningServer]:
    ct, dx, _ = build(args)
    if kind == "orthanc":
        with servers.orthanc_server(work, "orthanc") as server:
            servers.orthanc_modality(server, "scu", SCU_AET, 1)
            servers.send(server, ct, 2, work)
            servers.send(server, dx, 1, work)
            yield server
        return
    data = work / "lightbox-data"
    prepare_lightbox(work, data, ct, dx, s3, args.backup)
    harness_env = lightbox_env(s3) | {"LIGHTBOX_BACKUP_SCHEDULE": "continuous", "LIGHTBOX_BACKUP_DELAY": "5"}
    with servers.lightbox_server(work, "lightbox", data_dir=data, env=harness_env) as server:
        yield server


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def role_of(root: int) -> Callable[[int], str]:
    """pid -> "main" (the server's process), "workers" (its forked copies: same command line)
    or the module a child was started with (``python -m NAME``: its last dotted part)."""
    root_cmd = cmdline(root)

    def role(pid: int) -> str:
        if pid == root:
            return "main"
        cmd = cmdline(pid)
        if cmd == root_cmd:
            return "workers"
        args = cmd.split(b"\0")
        module = args[args.index(b"-m") + 1] if b"-m" in args[:-1] else args[0]
        return module.decode(errors="replace").rsplit(".", 1)[-1] or "?"

    return role


@dataclass
class ServiceRun:
    peak: int  # summed PSS
    end: int
    at_peak: dict[str, int]  # per role, at the summed peak
    role_peaks: dict[str, int]  # each role's own peak
    at_end: dict[str, int]
    counts: dict[str, int]


def breakdown(sizes: dict[str, int]) -> str:
    return " + ".join(f"{name} {size / MB:.1f}" for name, size in sorted(sizes.items()))


def measure_service(kind: str, args: argparse.Namespace, work: Path, s3: MotoS3) -> ServiceRun:
    """Peak PSS under the load, PSS at its end (both also per role), and the work done."""
    ct_corpus, dx_corpus, live = build(args)
    ct, dx = uids(ct_corpus.files[len(ct_corpus) // 2]), uids(dx_corpus.files[0])
    run_dir = work / kind
    run_dir.mkdir()
    with started(kind, run_dir, args, s3) as server:
        load = Load()
        dicom_load(load, server, live, str(ct.StudyInstanceUID), run_dir)
        if kind == "orthanc":
            paths = web_paths_orthanc(server.http_port, ct, dx)
            web_load(load, lambda: RestClient(server.http_port).get, paths, args.web_clients)
        else:
            paths = web_paths_lightbox(ct, dx)
            web_load(load, lambda: Session(server.http_port).get, paths, args.web_clients)
            load.add("logins", lambda: login_burst(server.http_port), pause=LOGIN_EVERY_S)
        log(f"{kind}: load for {args.duration:.0f} s")
        role = role_of(server.proc.pid)
        with ServerSampler(server.proc.pid, interval=0.1, role=role) as sampler:
            load.run(args.duration)
        pids = descendants(server.proc.pid)
        names = {p: role(p) for p in pids}
        at_end = by_role({p: pss_bytes(p) for p in pids}, names.__getitem__)

    return ServiceRun(sampler.peak_pss, sum(at_end.values()), sampler.at_peak, sampler.role_peaks, at_end, load.counts)


def login_burst(port: int) -> None:
    threads = [threading.Thread(target=Session, args=(port,)) for _ in range(LOGIN_BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --------------------------------------------------------------------------- the bench


def benchmark(args: argparse.Namespace) -> None:
    servers.check_tools(servers.STORESCU, GETSCU, *([servers.ORTHANC] if "orthanc" in args.servers else []))
    servers.check_lightbox_importable()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server: no line per request
    s3 = MotoS3().start()
    try:
        with harness.workdir("memory", args) as work:
            if "commands" in args.parts:
                runs = measure_commands(args, work, s3)
                label, worst = max(runs, key=lambda r: r[1].peak_pss)
                verdict = "within" if worst.peak_pss < COMMAND_BUDGET else "OVER"
                print(f"commands: largest peak PSS {worst.peak_pss / MB:.1f} MB ({label}), {verdict} the "
                      f"{COMMAND_BUDGET / MB:.0f} MB budget", flush=True)  # fmt: skip
            if "service" in args.parts:
                peaks = {}
                for kind in args.servers:
                    run = measure_service(kind, args, work, s3)
                    peaks[kind] = run.peak
                    done = ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items()))
                    print(f"service  {kind:<9} peak PSS {run.peak / MB:6.1f} MB  at the end {run.end / MB:6.1f} MB  "
                          f"({done})", flush=True)  # fmt: skip
                    print(f"service  {kind:<9} at the peak: {breakdown(run.at_peak)}; each one's peak: "
                          f"{breakdown(run.role_peaks)}; at the end: {breakdown(run.at_end)} (MB)", flush=True)  # fmt: skip
                if "lightbox" in peaks:
                    verdict = "within" if peaks["lightbox"] < SERVICE_BUDGET else "OVER"
                    print(f"service: lightbox {verdict} the {SERVICE_BUDGET / MB:.0f} MB budget")
                if len(peaks) == 2:
                    print(f"ratio orthanc/lightbox peak PSS {peaks['orthanc'] / peaks['lightbox']:.2f}")
    finally:
        s3.stop()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("memory", __doc__.split("\n\n")[0])
    harness.add_servers(parser)
    harness.add_workdir(parser)
    parser.add_argument("--parts", type=lambda s: s.split(","), default=["commands", "service"],
                        help="comma-separated subset of commands,service")  # fmt: skip
    parser.add_argument("--slices", type=int, default=300, help="CT slices of 0.5 MB, preloaded and sent live")
    parser.add_argument("--radiographs", type=int, default=4, help="10 MB radiographs (at least 3)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load on each server")
    parser.add_argument("--web-clients", type=int, default=3, help="web clients browsing at once")
    parser.add_argument("--no-backup", dest="backup", action="store_false",
                        help="no continuous backup in Lightbox's service during the load")  # fmt: skip
    args = parser.parse_args(argv)
    if args.radiographs < 3:
        parser.error("--radiographs: at least 3 (merge and delete need them)")
    return args


if __name__ == "__main__":
    sys.exit(harness.run("memory", sys.argv[1:], parse_args, benchmark))
