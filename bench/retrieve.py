"""Retrieve benchmark: C-MOVE and C-GET of one CT study, Lightbox against Orthanc.

Each server gets the study (--slices CT images) by C-STORE, then, timed:
  cmove  DCMTK movescu asks the server to send the study to a DCMTK storescp
  cget   DCMTK getscu pulls the study itself
Each is run once untimed first (warm-up), then --repeat times; medians are reported.
Run as `python -m bench.retrieve`, in a private network namespace like bench.ingest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
from pydicom import dcmread

from bench import corpus, harness, servers
from bench.corpus import Corpus
from bench.harness import BENCH_ENV, MB, BenchError, log
from bench.servers import RunningServer

MOVESCU, GETSCU = "/usr/bin/movescu", "/usr/bin/getscu"
SCU_AET, DEST_AET = "BENCHSCU", "BENCHDEST"
OPERATIONS = ("cmove", "cget")


def register_peers(server: RunningServer, run_dir: Path, dest_port: int) -> None:
    """Make the server know the SCU (may move/get) and the storescp (C-MOVE destination)."""
    for name, aet, port, allow in (("scu", SCU_AET, 1, "move,get"), ("dest", DEST_AET, dest_port, "store")):
        if server.label == "orthanc":
            servers.orthanc_modality(server, name, aet, port)
        else:
            servers.lightbox_cli("node", "add", "--data", str(run_dir / "lightbox-data"), "--aet", aet,
                                 "--host", "127.0.0.1", "--port", str(port), "--allow", allow)  # fmt: skip


def retrieve_command(operation: str, server: RunningServer, study_uid: str, out: Path) -> list[str]:
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}"]
    peer = ["-aet", SCU_AET, "-aec", server.aet, "127.0.0.1", str(server.dicom_port)]
    if operation == "cmove":
        return [MOVESCU, "-S", "-aem", DEST_AET, *keys, *peer]
    return [GETSCU, "-S", "-od", str(out), *keys, *peer]


def timed_retrieve(operation: str, server: RunningServer, study_uid: str, out: Path, expected: int) -> float:
    """Run one retrieve into an empty ``out``; return its wall time; check all arrived."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.sync()
    log_path = out.parent / f"{operation}.log"
    started = time.perf_counter()
    with open(log_path, "wb") as log_file:
        code = subprocess.run(retrieve_command(operation, server, study_uid, out), stdout=log_file,
                              stderr=subprocess.STDOUT, env=BENCH_ENV).returncode  # fmt: skip
    wall = time.perf_counter() - started
    got = len(list(out.iterdir()))
    if code != 0 or got != expected:
        raise BenchError(
            f"{operation} from {server.label}: exit {code}, {got}/{expected} files; log:\n{harness.tail(log_path)}"
        )
    return wall


def measure(label: str, start: Callable[[Path], AbstractContextManager[RunningServer]], study: Corpus, study_uid: str,
            args: argparse.Namespace, workdir: Path) -> dict[str, list[float]]:  # fmt: skip
    run_dir = workdir / label
    run_dir.mkdir()
    received = run_dir / "received"
    walls: dict[str, list[float]] = {op: [] for op in args.operations}
    with start(run_dir) as server:
        servers.send(server, study, 1, run_dir)
        servers.wait_for_count(server, len(study))
        with servers.storescp(run_dir, received, DEST_AET) as dest_port:
            register_peers(server, run_dir, dest_port)
            for op in args.operations:
                for rep in range(args.repeat + 1):  # the first is the warm-up
                    wall = timed_retrieve(op, server, study_uid, received, len(study))
                    if rep:
                        walls[op].append(wall)
                    log(f"{label} {op} run {rep}{' (warm-up)' if not rep else ''}: {len(study) / wall:.1f} img/s")
    return walls


def benchmark(args: argparse.Namespace) -> None:
    servers.check_tools(MOVESCU, GETSCU, servers.STORESCP, servers.STORESCU, servers.ORTHANC)
    servers.check_lightbox_importable()
    study = corpus.ct_series(args.slices, np.random.default_rng(20240601))
    study_uid = str(dcmread(study.files[0], stop_before_pixels=True).StudyInstanceUID)
    starts = {
        "lightbox": lambda d: servers.lightbox_server(d, "lightbox"),
        "orthanc": lambda d: servers.orthanc_server(d, "orthanc"),
    }
    with harness.workdir("retrieve", args) as workdir:
        results = {label: measure(label, starts[label], study, study_uid, args, workdir) for label in args.servers}
    for op in args.operations:
        medians = {label: statistics.median(results[label][op]) for label in args.servers}
        for label, wall in medians.items():
            print(
                f"{op} {label} {len(study) / wall:.1f} img/s {study.total_bytes / MB / wall:.1f} MB/s wall {wall:.2f} s"
            )
        if len(medians) == 2:
            print(f"{op} ratio lightbox/orthanc img/s {medians['orthanc'] / medians['lightbox']:.2f}")
    sys.stdout.flush()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("retrieve", "C-MOVE/C-GET throughput: Lightbox vs Orthanc.")
    parser.add_argument("--slices", type=int, default=500, help="CT images in the study (512x512 int16), default 500")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per figure (after one warm-up); medians")
    harness.add_servers(parser)
    parser.add_argument(
        "--operations", type=lambda s: s.split(","), default=list(OPERATIONS), help="cmove,cget or one of them"
    )
    harness.add_workdir(parser)
    args = parser.parse_args(argv)
    if set(args.operations) - set(OPERATIONS) or args.repeat < 1:
        parser.error("operations: cmove,cget; --repeat >= 1")
    return args


if __name__ == "__main__":
    sys.exit(harness.run("retrieve", sys.argv[1:], parse_args, benchmark))
