"""Peers benchmark: association set-up (each recorded as a learned device) and forwarding.

  associations  --associations sequential DCMTK echoscu runs, each one association with a
                C-ECHO: associations/s (Lightbox records every one in its device table)
  forward       one CT study (--slices) sent on to a DCMTK storescp: Lightbox by a forwarding
                rule (time from the job's creation to its delivery, both in the queue row),
                Orthanc by POST /modalities/{id}/store (synchronous)
Side by side with Orthanc.  Run as `python -m bench.peers`, in a private network namespace
like bench.ingest.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import corpus, harness, servers
from bench.corpus import Corpus
from bench.harness import BENCH_ENV, BenchError, log
from bench.servers import RunningServer

ECHOSCU = "/usr/bin/echoscu"
DEST_AET = "BENCHDEST"


def associations_per_second(server: RunningServer, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        cmd = [ECHOSCU, "-aet", f"ECHO{i % 50:03d}", "-aec", server.aet, "127.0.0.1", str(server.dicom_port)]
        if subprocess.run(cmd, env=BENCH_ENV, capture_output=True).returncode != 0:
            raise BenchError(f"echoscu against {server.label} failed")
    return count / (time.perf_counter() - started)


def lightbox_forward_seconds(server: RunningServer, run_dir: Path, study: Corpus, dest_port: int) -> float:
    data = ["--data", str(run_dir / "lightbox-data")]
    servers.lightbox_cli(
        "node", "add", *data, "--aet", DEST_AET, "--host", "127.0.0.1", "--port", str(dest_port), "--allow", "store"
    )
    servers.lightbox_cli("forward", "add", *data, "--to", DEST_AET)
    servers.send(server, study, 1, run_dir)
    db_path = run_dir / "lightbox-data" / "index.sqlite"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        db = sqlite3.connect(db_path, timeout=30)
        try:
            row = db.execute("SELECT done_at - created_at, sent FROM forwardjob WHERE state = 'done'").fetchone()
        finally:
            db.close()
        if row is not None:
            if row[1] != len(study):
                raise BenchError(f"Lightbox forwarded {row[1]}/{len(study)} instances")
            return float(row[0])
        time.sleep(0.5)
    raise BenchError("Lightbox did not forward the study")


def orthanc_forward_seconds(server: RunningServer, run_dir: Path, study: Corpus, dest_port: int) -> float:
    base = f"http://127.0.0.1:{server.http_port}"
    servers.orthanc_modality(server, "dest", DEST_AET, dest_port)
    servers.send(server, study, 1, run_dir)
    servers.wait_for_count(server, len(study))
    study_id = json.loads(servers.http(f"{base}/studies", timeout=30))[0]
    body = json.dumps({"Resources": [study_id], "Synchronous": True}).encode()
    started = time.perf_counter()
    servers.http(f"{base}/modalities/dest/store", body, "POST", timeout=600)
    return time.perf_counter() - started


def measure(label: str, args: argparse.Namespace, study: Corpus, workdir: Path) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"associations": [], "forward": []}
    start = servers.lightbox_server if label == "lightbox" else servers.orthanc_server
    for rep in range(args.repeat):
        run_dir = workdir / f"{label}-{rep}"
        run_dir.mkdir()
        received = run_dir / "received"
        with start(run_dir, label) as server:
            rate = associations_per_second(server, args.associations)
            results["associations"].append(rate)
            log(f"run {rep + 1}/{args.repeat}: associations {label} {rate:.1f}/s")
            with servers.storescp(run_dir, received, DEST_AET) as dest_port:
                forward = lightbox_forward_seconds if label == "lightbox" else orthanc_forward_seconds
                seconds = forward(server, run_dir, study, dest_port)
            got = len(list(received.iterdir()))
            if got != len(study):
                raise BenchError(f"{label} forwarded {got}/{len(study)} files")
            results["forward"].append(len(study) / seconds)
            log(f"run {rep + 1}/{args.repeat}: forward {label} {len(study) / seconds:.1f} img/s")
    return results


def benchmark(args: argparse.Namespace) -> None:
    servers.check_tools(ECHOSCU, servers.STORESCP, servers.STORESCU, servers.ORTHANC)
    servers.check_lightbox_importable()
    BENCH_ENV["LIGHTBOX_STABLE_AGE"] = "1"  # the study is forwarded once stable
    study = corpus.ct_series(args.slices, np.random.default_rng(20240601))
    with harness.workdir("peers", args) as workdir:
        results = {label: measure(label, args, study, workdir) for label in args.servers}
    medians = {label: {k: statistics.median(v) for k, v in r.items()} for label, r in results.items()}
    for label, m in medians.items():
        print(
            f"associations {label} {m['associations']:.1f}/s ({1000 / m['associations']:.1f} ms each, echoscu included)"
        )
        print(f"forward {label} {m['forward']:.1f} img/s")
    if len(medians) == 2:
        for figure in ("associations", "forward"):
            print(f"{figure} ratio lightbox/orthanc {medians['lightbox'][figure] / medians['orthanc'][figure]:.2f}")
    sys.stdout.flush()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("peers", "Association set-up and forwarding: Lightbox vs Orthanc.")
    parser.add_argument("--associations", type=int, default=200, help="sequential echoscu associations, default 200")
    parser.add_argument("--slices", type=int, default=200, help="CT images in the forwarded study, default 200")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; medians")
    harness.add_servers(parser)
    harness.add_workdir(parser)
    args = parser.parse_args(argv)
    if min(args.associations, args.slices, args.repeat) < 1:
        parser.error("--associations, --slices, --repeat >= 1")
    return args


if __name__ == "__main__":
    sys.exit(harness.run("peers", sys.argv[1:], parse_args, benchmark))
