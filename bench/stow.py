"""STOW-RS ingest rate: Lightbox against Orthanc with its DICOMweb plugin (orthanc-dicomweb).

A CT series (--slices, 512x512 int16, 0.5 MB each) is sent by one client, --per-request
instances to a `POST /dicom-web/studies`, one request after the other; both servers answer a
request once its instances are stored (Lightbox: fsynced and committed; Orthanc: written, with
its default settings, which do not fsync); the servers' CPU per instance and peak PSS (all
their processes) are printed beside.  Run as `python -m bench.stow`; see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import requests

from bench import corpus, harness, servers
from bench.harness import MB, BenchError, log
from bench.procstat import ServerSampler
from bench.servers import RunningServer

USER, PASSWORD = "bench", "bench password 1"
BOUNDARY = "bench-stow-boundary"


class Body:
    """A multipart/related body read from the files as it is sent (the client holds one
    chunk), with a length, so that it goes with Content-Length rather than chunked."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.pieces: list[bytes | Path] = []
        for path in files:
            self.pieces += [f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode(), path, b"\r\n"]
        self.pieces.append(f"--{BOUNDARY}--\r\n".encode())
        self.length = sum(len(p) if isinstance(p, bytes) else p.stat().st_size for p in self.pieces)
        self.chunks = self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        for piece in self.pieces:
            if isinstance(piece, bytes):
                yield piece
            else:
                with open(piece, "rb") as f:
                    while block := f.read(1 << 20):
                        yield block

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        return next(self.chunks, b"")


def stow(server: RunningServer, files: Sequence[Path], per_request: int, auth: tuple[str, str] | None) -> float:
    """Send ``files`` in requests of ``per_request``; the wall time until the last answer."""
    url = f"http://127.0.0.1:{server.http_port}/dicom-web/studies"
    content_type = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    session = requests.Session()
    session.trust_env = False
    started = time.perf_counter()
    for i in range(0, len(files), per_request):
        answer = session.post(url, data=Body(files[i : i + per_request]), auth=auth, timeout=600,
                              headers={"Content-Type": content_type, "Accept": "application/dicom+json"})  # fmt: skip
        if answer.status_code != 200:
            raise BenchError(f"{server.label} answered {answer.status_code}: {answer.text[:500]}")
    return time.perf_counter() - started


@contextlib.contextmanager
def lightbox(run_dir: Path) -> Iterator[RunningServer]:
    data = run_dir / "lightbox-data"
    data.mkdir(parents=True)
    servers.lightbox_cli("user", "add", USER, "--role", "admin", "--password-stdin", "--data", str(data),
                         stdin=PASSWORD + "\n")  # fmt: skip
    with servers.lightbox_server(run_dir, "lightbox", data) as server:
        yield server


def benchmark(args: argparse.Namespace) -> None:
    chosen = args.servers
    if "orthanc" in chosen:
        servers.check_tools(servers.ORTHANC)
        if not os.path.exists(servers.DICOMWEB_PLUGIN):
            raise BenchError(f"no {servers.DICOMWEB_PLUGIN}: apt-get install -y orthanc-dicomweb")
    if "lightbox" in chosen:
        servers.check_lightbox_importable()
    series = corpus.ct_series(args.slices, np.random.default_rng(7))
    files = list(series.files)
    rates: dict[str, float] = {}
    with harness.workdir("stow", args) as work:
        for label in chosen:
            run_dir = work / label
            run_dir.mkdir()
            if label == "lightbox":
                context = lightbox(run_dir)
                auth: tuple[str, str] | None = (USER, PASSWORD)
            else:
                context = servers.orthanc_server(run_dir, label, [servers.DICOMWEB_PLUGIN])
                auth = None
            with context as server:
                log(f"{label}: STOW-RS of {len(files)} instances, {args.per_request} per request")
                with ServerSampler(server.proc.pid) as sampler:
                    wall = stow(server, files, args.per_request, auth)
                stored = server.count_instances()
                if stored != len(files):
                    raise BenchError(f"{label} holds {stored} instances after the STOW-RS, not {len(files)}")
            rates[label] = len(files) / wall
            print(f"{label:<9} stow instances={len(files)} per_request={args.per_request} wall={wall:6.2f} s"
                  f"  rate={rates[label]:7.1f} inst/s  {series.total_bytes / MB / wall:6.1f} MB/s"
                  f"  cpu={sampler.cpu_s * 1000 / len(files):5.1f} ms/inst  peak_pss={sampler.peak_pss / 2**20:6.1f} MB",
                  flush=True)  # fmt: skip
    if len(rates) == 2:
        print(f"ratio lightbox/orthanc stow rate={rates['lightbox'] / rates['orthanc']:.2f}x", flush=True)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("stow", __doc__.splitlines()[0])
    harness.add_servers(parser)
    harness.add_workdir(parser)
    parser.add_argument("--slices", type=int, default=500, help="CT slices to send (default 500)")
    parser.add_argument("--per-request", type=int, default=50, help="instances per STOW-RS request (default 50)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(harness.run("stow", sys.argv[1:], parse_args, benchmark))
