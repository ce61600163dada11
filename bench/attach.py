"""Attaching files to a study: the wall time and the peak PSS of `lightbox serve` and its children
(ffmpeg) while a 50 MB MP4 (H.264, kept as is), a 50 MB AVI (MPEG-4 part 2, re-encoded to
H.264 by ffmpeg's libx264), a 20-page PDF of text, a 20-page scanned letter (a JPEG per page)
and a 12-megapixel phone photo are each POSTed to /api/studies/<uid>/attachments.

Side by side, Orthanc makes the same study's PDFs and photo with `POST /tools/create-dicom`
(base64 in JSON, its only way; it has none for videos), printed as ratios.

With --cpus 1 the service is pinned to one CPU (taskset), a stand-in for a Pi-class box.
Run as `python -m bench.attach`; see bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import requests
from PIL import Image
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


# What Orthanc's create-dicom is given each kind as (it makes no videos).
ORTHANC_TYPES = {"pdf (20 pages)": "application/pdf", "pdf (20 scans)": "application/pdf", "jpeg 12 MP": "image/jpeg"}


def media(folder: Path, seconds: int, size: str) -> dict[str, Path]:
    """The files to attach: ~50 MB each for the videos (7 Mbit/s for ``seconds``), a ~12 MB
    scanned letter (an A4 page at 150 dpi, ~0.6 MB of JPEG, on each of its 20 pages)."""
    made = {"pdf (20 pages)": folder / "letter.pdf", "pdf (20 scans)": folder / "scanned.pdf",
            "jpeg 12 MP": folder / "photo.jpg", "mp4 h264": folder / "clip.mp4", "avi mpeg4": folder / "clip.avi"}  # fmt: skip
    minimal_pdf(made["pdf (20 pages)"], pages=20, title="Bench letter")
    scan = io.BytesIO()  # paper's grain on white: ~0.4 MB a page, as a 150 dpi colour scan
    Image.effect_noise((1240, 1754), 6).point(lambda v: min(255, v + 110)).convert("RGB").save(scan, "JPEG", quality=75)
    minimal_pdf(made["pdf (20 scans)"], pages=20, title="Bench scanned letter", scans=scan.getvalue())
    # A phone photo's noise (~5 MB at quality 90), not flat colours that compress to nothing.
    Image.merge("RGB", [Image.effect_noise((4000, 3000), sigma) for sigma in (12, 16, 20)]).save(
        made["jpeg 12 MP"], "JPEG", quality=90
    )
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


def warm_up(server: RunningServer) -> None:
    """One authenticated request first: HTTP Basic's Argon2 check (~35 ms) is paid once, then cached."""
    url = f"http://127.0.0.1:{server.http_port}/api/studies"
    requests.get(url, auth=(USER, PASSWORD), timeout=60, proxies={"http": "", "https": ""}).raise_for_status()


def attach(server: RunningServer, study_uid: str, path: Path) -> dict:
    url = f"http://127.0.0.1:{server.http_port}/api/studies/{study_uid}/attachments"
    session = requests.Session()
    session.trust_env = False
    with open(path, "rb") as body:
        answer = session.post(url, params={"name": path.name}, data=body, auth=(USER, PASSWORD), timeout=7200)
    if answer.status_code != 201:
        raise BenchError(f"attaching {path.name} answered {answer.status_code}: {answer.text[:500]}")
    return answer.json()


def orthanc_create(server: RunningServer, parent: str, path: Path, media_type: str) -> str:
    content = f"data:{media_type};base64," + base64.b64encode(path.read_bytes()).decode()
    body = json.dumps({"Parent": parent, "Tags": {}, "Content": content}).encode()
    servers.http(f"http://127.0.0.1:{server.http_port}/tools/create-dicom", body, "POST", timeout=600)
    return "made"


def orthanc_study(server: RunningServer, study: list[Path], study_uid: str) -> str:
    """Orthanc's ID of the study, stored there through its REST API."""
    base = f"http://127.0.0.1:{server.http_port}"
    for path in study:
        servers.http(f"{base}/instances", path.read_bytes(), "POST")
    found = json.loads(servers.http(f"{base}/tools/lookup", study_uid.encode(), "POST"))
    return str(next(item["ID"] for item in found if item["Type"] == "Study"))


def measured(server: RunningServer, label: str, path: Path, send: Callable[[Path], str]) -> float:
    """Attach ``path`` with ``send`` (which says how it was made); its wall time, printed."""
    with ServerSampler(server.proc.pid, SAMPLE_S) as sampler:
        started = time.perf_counter()
        how = send(path)
        wall = time.perf_counter() - started
    print(f"{server.label:<8} attach {label:<15} {path.stat().st_size / MB:6.1f} MB  how={how:<10}"
          f" wall={wall:7.2f} s  cpu={sampler.cpu_s:7.2f} s  peak_pss={sampler.peak_pss / 2**20:6.1f} MiB",
          flush=True)  # fmt: skip
    return wall


def benchmark(args: argparse.Namespace) -> None:
    servers.check_lightbox_importable()
    servers.check_tools(FFMPEG, servers.ORTHANC)
    with harness.workdir("attach", args) as work:
        study = make_study(work / "study", 1)
        study_uid = str(dcmread(study[0], stop_before_pixels=True).StudyInstanceUID)
        files = media(work, args.seconds, args.size)
        walls: dict[tuple[str, str], float] = {}
        log(f"lightbox (cpus={args.cpus or 'all'})")
        with lightbox(work / "lightbox", work / "study", args.cpus) as server:
            warm_up(server)
            for label, path in files.items():
                walls["lightbox", label] = measured(
                    server, label, path, lambda p: str(attach(server, study_uid, p)["how"])
                )
        (work / "orthanc").mkdir()
        with servers.orthanc_server(work / "orthanc", "orthanc") as orthanc:
            if args.cpus:
                cores = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[: args.cpus])
                subprocess.run(
                    ["taskset", "-a", "-p", "-c", cores, str(orthanc.proc.pid)], check=True, capture_output=True
                )
            parent = orthanc_study(orthanc, study, study_uid)
            for label, media_type in ORTHANC_TYPES.items():
                path = files[label]
                walls["orthanc", label] = measured(
                    orthanc, label, path, functools.partial(orthanc_create, orthanc, parent, media_type=media_type)
                )
        for label in ORTHANC_TYPES:
            ratio = walls["orthanc", label] / walls["lightbox", label]
            print(f"ratio lightbox/orthanc attach {label}: {ratio:.2f}x (orthanc's time / lightbox's)", flush=True)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("attach", __doc__.splitlines()[0], netns=False)
    harness.add_workdir(parser)
    parser.add_argument("--seconds", type=int, default=60, help="length of each video (default 60: ~50 MB)")
    parser.add_argument("--size", default="1280x720", help="the videos' frame size (default 1280x720)")
    parser.add_argument("--cpus", type=int, default=0, help="pin the service to this many CPUs (default: all)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(harness.run("attach", sys.argv[1:], parse_args, benchmark, netns=False))
