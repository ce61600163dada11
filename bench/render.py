"""Rendering benchmark: Lightbox's frame routes against Orthanc's, over HTTP on loopback.

Figures (each server holds the same files; Lightbox gets them with `appliance import`, Orthanc
by REST upload):
  ct-frame     first frame of a 512x512 CT slice, its window, JPEG, a slice not asked for
               before                                                    (target: median < 50 ms)
  dx-fit-1024  a 2000x2500 radiograph fitted to 1024 px, JPEG            (target: median < 250 ms)
  thumbnails   series thumbnails per second: Lightbox's cached series thumbnail (cold: a series
               not asked for before, made and stored; warm: from the cache) against Orthanc
               rendering the series' instance at 160 px (it has no series thumbnail)
  cine-jpeg    a 30-frame 640x480 ultrasound loop (JPEG Baseline, YBR_FULL_422), frames in order
               on one connection, frames/s                                (target: >= 30 fps)
  cine-rgb     the same loop stored uncompressed (RGB): every frame decoded and encoded
Lightbox is served by the real routes (appliance.web.frames) in a bottle app with a pass-through
guard, under waitress, in its own process; Orthanc answers /instances/{id}/frames/{n-1}/rendered.
Both servers run side by side and take turns, one sample each, --repeat samples per figure after
a warm-up of 2; the median is reported.  A sample is the client's wall time over a kept-alive
loopback connection (a whole loop for cine).  Run as `python -m bench.render`, in a private
network namespace like bench.ingest.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, UltrasoundMultiFrameImageStorage, generate_uid

from bench import corpus, harness, servers
from bench.corpus import Corpus
from bench.harness import MB, BenchError
from bench.procstat import rss_bytes

CINE_FRAMES, US_ROWS, US_COLUMNS = 30, 480, 640
THUMBNAIL_SIDE = 160
WARMUP = 2  # untimed turns before each figure's samples
# The routes under test in a minimal app: the web UI's login guard is replaced by a pass-through.
LIGHTBOX_SERVER = """
import sys, bottle, waitress
from pathlib import Path
from appliance.archive import Archive
from appliance.web import frames
app = bottle.Bottle()
frames.install(app, Archive(Path(sys.argv[1])), guard=lambda handler: handler)
app.get("/healthz")(lambda: {"status": "ok"})
waitress.serve(app, host="127.0.0.1", port=int(sys.argv[2]), threads=8, _quiet=True)
"""


def write_us_loops(out: Path, rng: np.random.Generator) -> None:
    """A 30-frame 640x480 loop twice: JPEG Baseline YBR_FULL_422 (as scanners send it) and RGB."""
    from PIL import Image

    study = corpus.new_study("BENCH^US", "BENCH-US", "Cardiac loop")
    y, x = np.mgrid[0:US_ROWS, 0:US_COLUMNS]
    sector = np.hypot(x - US_COLUMNS / 2, y) < US_ROWS * 0.95
    frames = []
    for i in range(CINE_FRAMES):
        blob = np.exp(-((x - 320 - 80 * np.sin(i / 5)) ** 2 + (y - 240) ** 2) / 3000.0)
        grey = np.clip((rng.normal(60, 25, (US_ROWS, US_COLUMNS)) + 160 * blob) * sector, 0, 255).astype(np.uint8)
        rgb = np.stack([grey, grey, grey], axis=-1)
        rgb[20:40, 20:200] = (250, 200, 40)  # a coloured annotation, as scanners burn in
        frames.append(rgb)
    for name, encoded in (("jpeg", True), ("rgb", False)):
        ds = corpus.base_dataset(UltrasoundMultiFrameImageStorage, study, generate_uid(), "US")
        ds.InstanceNumber = 1
        ds.NumberOfFrames = CINE_FRAMES
        ds.FrameTime = 33.3
        ds.FrameIncrementPointer = 0x00181063
        ds.Rows, ds.Columns = US_ROWS, US_COLUMNS
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        if encoded:
            jpegs = []
            for rgb in frames:
                buffer = io.BytesIO()
                Image.fromarray(rgb, "RGB").save(buffer, "JPEG", quality=90, subsampling="4:2:2")
                jpegs.append(buffer.getvalue())
            ds.PhotometricInterpretation = "YBR_FULL_422"
            ds.LossyImageCompression = "01"
            ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
            ds.add_new(0x7FE00010, "OB", encapsulate(jpegs, has_bot=True))
            ds["PixelData"].is_undefined_length = True
        else:
            ds.PhotometricInterpretation = "RGB"
            ds.add_new(0x7FE00010, "OB", np.stack(frames).tobytes())
        corpus.save_part10(ds, out / f"US-{name}.dcm")


def write_thumbnail_series(out: Path, count: int, rng: np.random.Generator) -> None:
    for i in range(count):
        folder = out / f"S{i:04d}"
        folder.mkdir()
        corpus.write_ct_series(folder, 1, rng, f"THUMB{i:04d}")


def build_corpora(args: argparse.Namespace) -> dict[str, Corpus]:
    rng = np.random.default_rng(20240602)
    samples = args.repeat + WARMUP  # one new CT slice per frame sample, one new series per cold thumbnail
    return {
        "ct": corpus.ct_series(samples, rng),
        "dx": corpus.radiographs(1, rng),
        "us": corpus.load_or_build("us-loops-v1", lambda d: write_us_loops(d, rng)),
        "thumbs": corpus.load_or_build(f"thumbs-{samples}", lambda d: write_thumbnail_series(d, samples, rng)),
    }


# --------------------------------------------------------------------------- servers


class Client:
    """GETs over one kept-alive connection; each returns the body (status must be 200)."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = headers or {}

    def get(self, path: str) -> bytes:
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise BenchError(f"GET {path} -> {response.status}: {body[:200]!r}")
        return body

    def close(self) -> None:
        self.connection.close()


class Server:
    """A running server and how to ask it for each figure's pictures."""

    label: str
    port: int
    pid: int

    def frame(self, sop_uid: str, n: int, query: str = "") -> str: ...

    def thumbnail(self, sop_uid: str, series_uid: str) -> str: ...


class LightboxServer(Server):
    label = "lightbox"

    def frame(self, sop_uid: str, n: int, query: str = "") -> str:
        return f"/api/instances/{sop_uid}/frames/{n}/rendered{query}"

    def thumbnail(self, sop_uid: str, series_uid: str) -> str:
        return f"/api/series/{series_uid}/thumbnail"


class OrthancServer(Server):
    label = "orthanc"

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def frame(self, sop_uid: str, n: int, query: str = "") -> str:
        return f"/instances/{self.ids[sop_uid]}/frames/{n - 1}/rendered{query}"

    def thumbnail(self, sop_uid: str, series_uid: str) -> str:
        return self.frame(sop_uid, 1, f"?width={THUMBNAIL_SIDE}&height={THUMBNAIL_SIDE}")


@contextlib.contextmanager
def lightbox(run_dir: Path, files: Sequence[Path]) -> Iterator[Server]:
    data = run_dir / "lightbox-data"
    for folder in sorted({f.parent for f in files}):
        servers.lightbox_import(data, folder, run_dir / "import.log")
    port = servers.free_port()
    cmd = [sys.executable, "-c", LIGHTBOX_SERVER, str(data), str(port)]
    with servers.managed_process(cmd, run_dir / "lightbox.log", servers.lightbox_env(), harness.REPO_ROOT) as proc:
        servers.wait_ready(proc, "Lightbox", f"http://127.0.0.1:{port}/healthz", run_dir / "lightbox.log")
        server = LightboxServer()
        server.port, server.pid = port, proc.pid
        yield server


@contextlib.contextmanager
def orthanc(run_dir: Path, files: Sequence[Path]) -> Iterator[Server]:
    with servers.orthanc_server(run_dir, "orthanc") as running:
        server = OrthancServer()
        server.port, server.pid = running.http_port, running.proc.pid
        for path in files:
            answer = servers.http(
                f"http://127.0.0.1:{running.http_port}/instances", path.read_bytes(), "POST", timeout=60
            )
            server.ids[uid_of(path, "SOPInstanceUID")] = json.loads(answer)["ID"]
        yield server


def uid_of(path: Path, keyword: str) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[keyword])[keyword].value)


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str  # "ms" (lower is better) or a rate (higher is better)
    sample: Callable[[Server, Client], float]  # one timed measurement


def timed_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return 1000 * (time.perf_counter() - started)


def make_figures(corpora: dict[str, Corpus]) -> list[Figure]:
    """Each figure's sample draws new slices and series from per-server queues, so that every
    CT slice and every cold thumbnail is a first request for that server."""
    slices = [uid_of(p, "SOPInstanceUID") for p in corpora["ct"].files]
    series = [(uid_of(p, "SOPInstanceUID"), uid_of(p, "SeriesInstanceUID")) for p in corpora["thumbs"].files]
    dx = uid_of(corpora["dx"].files[0], "SOPInstanceUID")
    loops = {kind: uid_of(next(p for p in corpora["us"].files if p.name == f"US-{kind}.dcm"), "SOPInstanceUID")
             for kind in ("jpeg", "rgb")}  # fmt: skip
    unused: dict[tuple[str, str], list] = {}
    shown: dict[str, list] = {}

    def fresh(kind: str, items: list, server: Server) -> Any:
        queue = unused.setdefault((kind, server.label), list(items))
        if not queue:
            raise BenchError(f"not enough {kind} for --repeat")
        return queue.pop(0)

    def ct(server: Server, client: Client) -> float:
        return timed_ms(lambda: client.get(server.frame(fresh("slices", slices, server), 1)))

    def dx_fit(server: Server, client: Client) -> float:
        return timed_ms(lambda: client.get(server.frame(dx, 1, "?width=1024&height=1024")))

    def thumbnail_cold(server: Server, client: Client) -> float:
        sop, uid = fresh("series", series, server)
        shown.setdefault(server.label, []).append((sop, uid))
        return 1000 / timed_ms(lambda: client.get(server.thumbnail(sop, uid)))

    def thumbnail_warm(server: Server, client: Client) -> float:
        sop, uid = shown[server.label][0]
        return 1000 / timed_ms(lambda: client.get(server.thumbnail(sop, uid)))

    def cine(kind: str) -> Callable[[Server, Client], float]:
        def sample(server: Server, client: Client) -> float:
            loop = loops[kind]
            return (
                CINE_FRAMES
                * 1000
                / timed_ms(lambda: [client.get(server.frame(loop, n)) for n in range(1, CINE_FRAMES + 1)])
            )

        return sample

    return [
        Figure("ct-frame", "ms", ct),
        Figure("dx-fit-1024", "ms", dx_fit),
        Figure("thumbnails-cold", "/s", thumbnail_cold),
        Figure("thumbnails-warm", "/s", thumbnail_warm),
        Figure("cine-jpeg", "fps", cine("jpeg")),
        Figure("cine-rgb", "fps", cine("rgb")),
    ]


def measure(running: list[Server], figures: list[Figure], repeat: int) -> dict[tuple[str, str], float]:
    """Median of each figure per server.  The servers run side by side and take turns, one
    sample each, so that the machine's ups and downs fall on both alike."""
    clients = {s.label: Client(s.port, {"Accept": "image/jpeg"}) for s in running}  # Orthanc answers PNG unless asked
    results = {}
    try:
        for figure in figures:
            samples: dict[str, list[float]] = {s.label: [] for s in running}
            for turn in range(WARMUP + repeat):
                for server in running:
                    value = figure.sample(server, clients[server.label])
                    if turn >= WARMUP:
                        samples[server.label].append(value)
            for label, values in samples.items():
                results[(figure.name, label)] = statistics.median(values)
    finally:
        for client in clients.values():
            client.close()
    return results


def benchmark(args: argparse.Namespace) -> None:
    corpora = build_corpora(args)
    files = [f for c in corpora.values() for f in c.files]
    starters = {"lightbox": lightbox, "orthanc": orthanc}
    with harness.workdir("render", args) as workdir, contextlib.ExitStack() as stack:
        running = []
        for name in args.servers:
            (workdir / name).mkdir()
            running.append(stack.enter_context(starters[name](workdir / name, files)))
        figures = make_figures(corpora)
        results = measure(running, figures, args.repeat)
        for server in running:
            for figure in figures:
                print(f"{figure.name} {server.label} {results[(figure.name, server.label)]:.1f} {figure.unit}")
            print(f"rss {server.label} {rss_bytes(server.pid) / MB:.0f} MB", flush=True)
        if len(running) == 2:
            for figure in figures:
                ours, theirs = results[(figure.name, "lightbox")], results[(figure.name, "orthanc")]
                faster = theirs / ours if figure.unit == "ms" else ours / theirs
                print(f"{figure.name} ratio lightbox-speed/orthanc-speed {faster:.2f}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("render", "Frame rendering: Lightbox vs Orthanc over HTTP.")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per figure (cine: loops), default 20")
    harness.add_servers(parser)
    harness.add_workdir(parser)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat is >= 1")
    return args


if __name__ == "__main__":
    sys.exit(harness.run("render", sys.argv[1:], parse_args, benchmark))
