"""Attaching files to a study: the wall time and the peak PSS of `lightbox serve` and its children
(ffmpeg) while a 50 MB MP4 (H.264, kept as is), a 50 MB AVI (MPEG-4 part 2, re-encoded to
H.264 by ffmpeg's libx264) and a 20-page PDF are each POSTed to /api/studies/<uid>/attachments.

With --cpus 1 the service is pinned to one CPU (taskset), a stand-in for a Pi-class box.
Run as `python -m bench.attach`; see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import requests
from pydicom import dcmread

from bench import harness, servers
from bench.harness import MB, REPO_ROOT, BenchError, log
from bench.procstat import ServerSampler
from bench.servers import RunningServer

sys.path.insert(0, str(REPO_ROOT / "tests"))  # support/: the test media generators, shared
from support.dicomgen import make_study  # noqa: E402
from support.mediagen import FFMPEG, minimal_pdf  # noqa: E402

USER, PASSWORD = "bench", "bench password 1"
SAMPLE_S = 0.05


def media(folder: Path, seconds: int, size: str) -> dict[str, Path]:
    """The files to attach: ~50 MB each for the videos (7 Mbit/s for ``seconds``)."""
    made = {"pdf (20 pages)": folder / "letter.pdf", "mp4 h264": folder / "clip.mp4", "avi mpeg4": folder / "clip.avi"}
    minimal_pdf(made["pdf (20 pages)"], pages=20, title="Bench letter")
    source = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}"]
    for key, codec in (("mp4 h264", ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]),
                       ("avi mpeg4", ["-c:v", "mpeg4"])):  # fmt: skip
        log(f"making {made[key].name} ({seconds} s of {size})")
        subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", *source, *codec, "-b:v", "7M", "-maxrate", "7M",
                        "-bufsize", "14M", str(made[key])], check=True, timeout=1800)  # fmt: skip
    return made


@contextlib.contextmanager
def lightbox(run_dir: Path, study: Path, cpus: int) -> Iterator[RunningServer]:
    data = run_dir / "lightbox-data"
    data.mkdir(parents=True)
    servers.lightbox_cli("user", "add", USER, "--role", "admin", "--password-stdin", "--data", str(data),
                         stdin=PASSWORD + "\n")  # fmt: skip
    servers.lightbox_import(data, study, run_dir / "import.log")
    with servers.lightbox_server(run_dir, "lightbox", data) as server:
        if cpus:
            cores = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:cpus])
            subprocess.run(["taskset", "-a", "-p", "-c", cores, str(server.proc.pid)], check=True, capture_output=True)
        yield server


def attach(server: RunningServer, study_uid: str, path: Path) -> dict:
    url = f"http://127.0.0.1:{server.http_port}/api/studies/{study_uid}/attachments"
    session = requests.Session()
    session.trust_env = False
    with open(path, "rb") as body:
        answer = session.post(url, params={"name": path.name}, data=body, auth=(USER, PASSWORD), timeout=7200)
    if answer.status_code != 201:
        raise BenchError(f"attaching {path.name} answered {answer.status_code}: {answer.text[:500]}")
    return answer.json()


def benchmark(args: argparse.Namespace) -> None:
    servers.check_lightbox_importable()
    servers.check_tools(FFMPEG)
    with harness.workdir("attach", args) as work:
        study = make_study(work / "study", 1)
        study_uid = str(dcmread(study[0], stop_before_pixels=True).StudyInstanceUID)
        files = media(work, args.seconds, args.size)
        with lightbox(work / "lightbox", work / "study", args.cpus) as server:
            for label, path in files.items():
                with ServerSampler(server.proc.pid, SAMPLE_S) as sampler:
                    started = time.perf_counter()
                    answer = attach(server, study_uid, path)
                    wall = time.perf_counter() - started
                print(f"lightbox attach {label:<15} {path.stat().st_size / MB:6.1f} MB  how={answer['how']:<10}"
                      f" wall={wall:7.2f} s  cpu={sampler.cpu_s:7.2f} s  peak_pss={sampler.peak_pss / 2**20:6.1f} MiB"
                      f"  (cpus={args.cpus or 'all'})", flush=True)  # fmt: skip


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("attach", __doc__.splitlines()[0], netns=False)
    harness.add_workdir(parser)
    parser.add_argument("--seconds", type=int, default=60, help="length of each video (default 60: ~50 MB)")
    parser.add_argument("--size", default="1280x720", help="the videos' frame size (default 1280x720)")
    parser.add_argument("--cpus", type=int, default=0, help="pin the service to this many CPUs (default: all)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(harness.run("attach", sys.argv[1:], parse_args, benchmark, netns=False))
