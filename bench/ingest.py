"""Ingest benchmark: Lightbox against Orthanc, both fed by DCMTK's storescu.

Scenarios (each against a freshly started server with an empty, or preloaded, archive):
  ct-1assoc  a CT series (--slices, 512x512 int16) in one association
  ct-4assoc  the same series split over 4 parallel associations
  dx-1assoc  large radiographs (--radiographs, ~10 MB each) in one association
  small-1assoc  small images (--small, 8x8 CT) in one association: each C-STORE is a few small
             PDUs, where a storescu with Nagle's algorithm on (--nagle) waits for each ACK

Run as `python -m bench.ingest`; it re-runs itself in a private network namespace.  See
bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.uid import CTImageStorage, generate_uid

from bench import corpus, harness, servers
from bench.corpus import Corpus
from bench.harness import MB, BenchError, log
from bench.procstat import ServerSampler
from bench.servers import RunningServer

# scenario name -> (corpus, parallel associations)
SCENARIOS = {"ct-1assoc": ("ct", 1), "ct-4assoc": ("ct", 4), "dx-1assoc": ("dx", 1), "small-1assoc": ("small", 1)}


# --------------------------------------------------------------------------- corpus


def write_tiny_archive(out: Path, count: int, rng: np.random.Generator) -> None:
    """Many small studies (8x8 CT images) to fill an index: 2 studies per patient,
    2 series per study, 25 images per series."""
    per_series, series_per_study = 25, 2
    written = 0
    study_no = 0
    while written < count:
        study = corpus.new_study(f"PRELOAD^P{study_no // 2:06d}", f"PL{study_no // 2:06d}", "Preload", day=study_no)
        study_dir = out / f"{study_no // 1000:03d}" / f"S{study_no:06d}"
        study_dir.mkdir(parents=True)
        for s in range(series_per_study):
            series_uid = generate_uid()
            for i in range(min(per_series, count - written)):
                ds = corpus.base_dataset(CTImageStorage, study, series_uid, "CT")
                ds.SeriesNumber = s + 1
                ds.InstanceNumber = i + 1
                ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
                ds.ImagePositionPatient = [0.0, 0.0, float(i)]
                ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
                ds.PixelSpacing = [1.0, 1.0]
                ds.RescaleIntercept = -1024
                ds.RescaleSlope = 1
                corpus.set_pixels(ds, rng.integers(0, 2048, (8, 8)), bits_stored=16, signed=True)
                corpus.save_part10(ds, study_dir / f"{s}-{i:03d}.dcm")
                written += 1
        study_no += 1
        if study_no % 200 == 0:
            log(f"  preload corpus: {written}/{count}")


def build_corpora(args: argparse.Namespace) -> dict[str, Corpus]:
    """The corpora the chosen scenarios need, keyed ct, dx, warmup and preload."""
    rng = np.random.default_rng(20240601)
    corpora = {}
    wanted = {SCENARIOS[name][0] for name in args.scenarios}
    if "ct" in wanted:
        corpora["ct"] = corpus.ct_series(args.slices, rng)
    if "dx" in wanted:
        corpora["dx"] = corpus.radiographs(args.radiographs, rng)
    if "small" in wanted:
        corpora["small"] = corpus.load_or_build(f"small-{args.small}", lambda d: write_tiny_archive(d, args.small, rng))
    if args.warmup:
        corpora["warmup"] = corpus.ct_series(args.warmup, rng, "WARMUP")
    if args.preload:
        corpora["preload"] = corpus.load_or_build(
            f"preload-{args.preload}", lambda d: write_tiny_archive(d, args.preload, rng)
        )
    return corpora


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    corpus: Corpus
    associations: int


@dataclass(frozen=True)
class Target:
    label: str
    start: Callable[[Path], AbstractContextManager[RunningServer]]


@dataclass(frozen=True)
class Measurement:
    wall_s: float
    peak_rss: int
    peak_pss: int
    server_cpu_s: float


def read_through(files: Sequence[Path]) -> None:
    """Read the corpus so that storescu finds it in the page cache whichever server goes first."""
    for path in files:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


def run_once(scenario: Scenario, target: Target, warmup: Corpus | None, run_dir: Path, nagle: bool) -> Measurement:
    run_dir.mkdir(parents=True)
    with target.start(run_dir) as server:
        if warmup is not None:  # the first association against a fresh process is slower
            before = server.count_instances()
            servers.send(server, warmup, 1, run_dir)
            servers.wait_for_count(server, before + len(warmup))
        before = server.count_instances()
        read_through(scenario.corpus.files)
        os.sync()
        with ServerSampler(server.proc.pid) as sampler:
            wall = servers.send(server, scenario.corpus, scenario.associations, run_dir, nagle)
        servers.wait_for_count(server, before + len(scenario.corpus))
    return Measurement(wall, sampler.peak_rss, sampler.peak_pss, sampler.cpu_s)


# --------------------------------------------------------------------------- reporting


def figure_line(scenario: Scenario, label: str, m: Measurement) -> str:
    images = len(scenario.corpus) / m.wall_s
    mbytes = scenario.corpus.total_bytes / MB / m.wall_s
    cpu_ms = 1000 * m.server_cpu_s / len(scenario.corpus)
    return (
        f"{scenario.name} {label} {images:.1f} img/s {mbytes:.1f} MB/s "
        f"peak_rss {m.peak_rss / MB:.0f} MB peak_pss {m.peak_pss / MB:.0f} MB wall {m.wall_s:.2f} s server_cpu {cpu_ms:.1f} ms/img"
    )


def median_measurement(runs: list[Measurement]) -> Measurement:
    return Measurement(
        wall_s=statistics.median(r.wall_s for r in runs),
        peak_rss=int(statistics.median(r.peak_rss for r in runs)),
        peak_pss=int(statistics.median(r.peak_pss for r in runs)),
        server_cpu_s=statistics.median(r.server_cpu_s for r in runs),
    )


def report(scenarios: list[Scenario], targets: list[Target], results: dict[tuple[str, str], list[Measurement]]) -> None:
    labels = [t.label for t in targets]
    pairs = [
        (a, b)
        for a, b in [("lightbox", "orthanc")]
        + [(label, "lightbox") for label in labels if label.startswith("lightbox@")]
        if a in labels and b in labels
    ]
    for scenario in scenarios:
        medians = {label: median_measurement(results[(scenario.name, label)]) for label in labels}
        for label in labels:
            print(figure_line(scenario, label, medians[label]))
        for a, b in pairs:
            print(f"{scenario.name} ratio {a}/{b} img/s {medians[b].wall_s / medians[a].wall_s:.2f}")
    sys.stdout.flush()


# --------------------------------------------------------------------------- main


def preload_template(preload: Corpus, workdir: Path) -> Path:
    """Import the preload corpus once into a Lightbox data dir that each run copies."""
    template = workdir / "preload-template"
    log(f"preloading {len(preload)} instances into Lightbox with `appliance import` ...")
    os.sync()
    started = time.perf_counter()
    servers.lightbox_import(template / "data", preload.dicom_dir, workdir / "preload-import.log")
    elapsed = time.perf_counter() - started
    print(f"preload lightbox {len(preload)} instances {elapsed:.1f} s {len(preload) / elapsed:.0f} img/s", flush=True)
    return template / "data"


def preloaded_lightbox(
    template: Path, label: str, count: int
) -> Callable[[Path], AbstractContextManager[RunningServer]]:
    @contextlib.contextmanager
    def start(run_dir: Path) -> Iterator[RunningServer]:
        data_dir = run_dir / "lightbox-data"
        shutil.copytree(template, data_dir, symlinks=True)
        with servers.lightbox_server(run_dir, label, data_dir) as server:
            if (got := server.count_instances()) < count:
                raise BenchError(f"preloaded Lightbox reports {got} instances, expected at least {count}")
            yield server

    return start


def make_targets(args: argparse.Namespace, corpora: dict[str, Corpus], workdir: Path) -> list[Target]:
    targets = []
    if "lightbox" in args.servers:
        targets.append(Target("lightbox", lambda d: servers.lightbox_server(d, "lightbox")))
        if args.preload:
            template = preload_template(corpora["preload"], workdir)
            label = f"lightbox@{args.preload}"
            targets.append(Target(label, preloaded_lightbox(template, label, args.preload)))
    if "orthanc" in args.servers:
        targets.append(Target("orthanc", lambda d: servers.orthanc_server(d, "orthanc")))
    return targets


def benchmark(args: argparse.Namespace) -> None:
    servers.check_tools(servers.STORESCU, *([servers.ORTHANC] if "orthanc" in args.servers else []))
    if "lightbox" in args.servers:
        servers.check_lightbox_importable()
    corpora = build_corpora(args)
    with harness.workdir("ingest", args) as workdir:
        targets = make_targets(args, corpora, workdir)
        scenarios = [Scenario(name, corpora[SCENARIOS[name][0]], SCENARIOS[name][1]) for name in args.scenarios]
        results: dict[tuple[str, str], list[Measurement]] = {}
        for rep in range(args.repeat):
            for scenario in scenarios:
                for target in targets:
                    run_dir = workdir / f"run{rep}-{scenario.name}-{target.label}"
                    m = run_once(scenario, target, corpora.get("warmup"), run_dir, args.nagle)
                    results.setdefault((scenario.name, target.label), []).append(m)
                    log(f"run {rep + 1}/{args.repeat}: {figure_line(scenario, target.label, m)}")
                    if not args.keep:
                        shutil.rmtree(run_dir)
        report(scenarios, targets, results)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("ingest", "C-STORE ingest benchmark: Lightbox vs Orthanc, driven by DCMTK storescu.")
    parser.add_argument("--slices", type=int, default=1000, help="CT slices (512x512 int16), default 1000")
    parser.add_argument("--radiographs", type=int, default=5, help="~10 MB DX radiographs, default 5")
    parser.add_argument("--small", type=int, default=200, help="8x8 CT images of small-1assoc, default 200")
    parser.add_argument(
        "--nagle", action="store_true", help="timed storescu as Debian packages it: Nagle's algorithm on"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; medians are reported")
    parser.add_argument(
        "--preload",
        type=int,
        default=0,
        metavar="N",
        help="also measure Lightbox with N tiny instances imported beforehand",
    )
    parser.add_argument(
        "--scale", action="store_const", const=100_000, dest="preload", help="shorthand for --preload 100000"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=10,
        metavar="N",
        help="CT slices sent (untimed) to each fresh server first; 0 to skip",
    )
    harness.add_servers(parser)
    parser.add_argument(
        "--scenarios",
        type=lambda s: s.split(","),
        default=list(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    harness.add_workdir(parser)
    args = parser.parse_args(argv)
    for scenario in args.scenarios:
        if scenario not in SCENARIOS:
            parser.error(f"unknown scenario {scenario!r}")
    if min(args.slices, args.radiographs, args.small, args.repeat) < 1 or min(args.preload, args.warmup) < 0:
        parser.error("--slices, --radiographs, --small and --repeat must be >= 1; --preload and --warmup >= 0")
    return args


if __name__ == "__main__":
    sys.exit(harness.run("ingest", sys.argv[1:], parse_args, benchmark))
