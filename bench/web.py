"""Web UI benchmark: server time of the study list, search and study page on a large archive.

The corpus is bench.query's (one tiny instance per study, two studies per patient, names
FAM0000^GIVENnnnnnn, accession QAnnnnnnnn), imported with `appliance import` in two parts
(--small studies, then up to --studies).  After each part a fresh `lightbox serve` is
started and, on one keep-alive HTTP connection with a logged-in session, each kind of
request is made --warmup times untimed and then --requests times timed:
  list-page    GET /                          the first page of the study list (HTML)
  list-api     GET /api/studies               its JSON twin
  search-name  GET /api/studies?q=fam0123     a surname word as typed (~studies/1000 matches)
  search-type  GET /api/studies?q=fam01       a shorter prefix while typing (~studies/100 matches)
  search-id    GET /api/studies?q=Q0001234    a Patient ID
  study-page   GET /studies/<uid>             one study's page (HTML, with its audit record)
  study-api    GET /api/studies/<uid>         its JSON twin
Each figure is the time from sending the request to the last byte of the answer over
loopback (median, p95).  Orthanc has no server-side sorted, paged study list to compare
with (its 1.10 /tools/find neither sorts nor pages), so no ratio is printed.  Run as
`python -m bench.web` (no Orthanc, so no private network namespace).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from bench import harness, query, servers
from bench.harness import BenchError

USER, PASSWORD = "bench", "bench password 1"
KINDS = ("list-page", "list-api", "search-name", "search-type", "search-id", "study-page", "study-api")


class Session:
    """One keep-alive HTTP connection with a logged-in session cookie."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        body = urllib.parse.urlencode({"name": USER, "password": PASSWORD})
        status, headers, _ = self.request("POST", "/login", body, {
            "Content-Type": "application/x-www-form-urlencoded", "Origin": f"http://127.0.0.1:{port}"})  # fmt: skip
        if status != 303:
            raise BenchError(f"login failed with HTTP {status}")
        self.cookie = headers["Set-Cookie"].split(";", 1)[0]

    def request(self, method: str, path: str, body: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        self.conn.request(method, path, body, headers or {})
        answer = self.conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()

    def get(self, path: str) -> bytes:
        status, _, body = self.request("GET", path, headers={"Cookie": self.cookie})
        if status != 200:
            raise BenchError(f"GET {path}: HTTP {status}")
        return body


def paths(kind: str, studies: int, count: int, rng: random.Random, study_uids: Sequence[str]) -> list[str]:
    patients = studies // 2
    if kind == "list-page":
        return ["/"] * count
    if kind == "list-api":
        return ["/api/studies"] * count
    if kind == "search-name":
        return [f"/api/studies?q=fam{rng.randrange(query.SURNAMES):04d}" for _ in range(count)]
    if kind == "search-type":
        return [f"/api/studies?q=fam{rng.randrange(query.SURNAMES // 10):03d}" for _ in range(count)]
    if kind == "search-id":
        return [f"/api/studies?q=Q{rng.randrange(patients):07d}" for _ in range(count)]
    prefix = "/studies/" if kind == "study-page" else "/api/studies/"
    return [prefix + rng.choice(study_uids) for _ in range(count)]


def some_study_uids(session: Session, studies: int, rng: random.Random) -> list[str]:
    uids = []
    for _ in range(20):
        found = json.loads(session.get(f"/api/studies?q=QA{rng.randrange(studies):08d}"))["studies"]
        uids += [s["study_uid"] for s in found]
    return uids


def measure(port: int, studies: int, args: argparse.Namespace) -> None:
    session = Session(port)
    rng = random.Random(f"web-{studies}")
    study_uids = some_study_uids(session, studies, rng)
    for kind in KINDS:
        subprocess.run(["sync"], check=False)
        times = []
        for i, path in enumerate(paths(kind, studies, args.warmup + args.requests, rng, study_uids)):
            started = time.perf_counter()
            session.get(path)
            if i >= args.warmup:
                times.append(time.perf_counter() - started)
        print(f"lightbox studies={studies:<7} {kind:<12} median={statistics.median(times) * 1000:7.1f} ms  "
              f"p95={harness.p95(times) * 1000:7.1f} ms", flush=True)  # fmt: skip


def measure_loaded(data: Path, workdir: Path, args: argparse.Namespace) -> None:
    """Measure an archive loaded before (e.g. kept by --keep), with its bench user."""
    with servers.lightbox_server(workdir, "lightbox", data) as server:
        studies = servers.http_get_json(f"http://127.0.0.1:{server.http_port}/healthz")["counts"]["studies"]
        measure(server.http_port, studies, args)


def benchmark(args: argparse.Namespace) -> None:
    servers.check_lightbox_importable()
    with harness.workdir("web", args) as workdir:
        if args.data:
            return measure_loaded(args.data, workdir, args)
        user_added = False
        for studies, start in query.lightbox_runs(query.corpus_parts(args), workdir):
            if not user_added:
                servers.lightbox_cli("user", "add", USER, "--role", "admin", "--password-stdin",
                                     "--data", str(workdir / "lightbox-data"), stdin=PASSWORD + "\n")  # fmt: skip
                user_added = True
            run_dir = workdir / f"lightbox-{studies}"
            run_dir.mkdir()
            with start(run_dir) as server:
                measure(server.http_port, studies, args)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("web", __doc__.split("\n")[0], netns=False)
    query.add_corpus_size(parser)
    parser.add_argument("--requests", type=int, default=50, help="timed requests of each kind (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests of each kind first (default 5)")
    harness.add_workdir(parser)
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="measure this data dir, loaded and kept by an earlier run, instead of loading one",
    )
    args = parser.parse_args(argv)
    if not 0 < args.small <= args.studies or args.requests < 2:
        parser.error("need 0 < --small <= --studies and --requests >= 2")
    return args


if __name__ == "__main__":
    sys.exit(harness.run("web", sys.argv[1:], parse_args, benchmark, netns=False))
