"""DICOMweb benchmark: Lightbox against Orthanc with its DICOMweb plugin (orthanc-dicomweb).

Both servers run side by side in one run and take turns, sample by sample, so that the shared
machine's slow moments fall on both.  Each holds the same files: --studies generated studies of
one 1x1 instance (bench.query's patients, names and dates; default 100,000) and a CT series of
--slices 512x512 slices (default 500), all stored by DCMTK storescu, --associations in parallel
to each server and both servers at once, within --seed-timeout seconds.

Figures (median client wall time over a kept-alive loopback connection, after a warm-up):
  qido-page      /studies?limit=101&offset=0&fuzzymatching=false&includefield=... as OHIF's study
                 list asks                          (target: median < 20 ms and >= 3x Orthanc)
  qido-name      /studies?PatientName=FAMnnnn*&fuzzymatching=false&limit=101, ~studies/1000
                 matches                             (same target)
  metadata-cold  /studies/{s}/series/{se}/metadata of the CT series, Lightbox's metadata cache
                 emptied before each sample (the files stay in the page cache)   (target: >= 2x)
  metadata-warm  the same, answered from Lightbox's cache
  metadata-first the first request for a copy of the CT series (new UIDs) just stored in both,
                 once Lightbox has made its JSON ahead (what a viewer opening a study that has
                 just arrived waits for); one copy a sample, --first-samples of them
  frames         frames/1 of every CT slice as OHIF asks (Accept: multipart/related;
                 type=application/octet-stream; transfer-syntax=*) over --connections parallel
                 connections, as a browser does: frames per second          (target: >= 1x)
and each server's peak PSS (all its processes) while the QIDO samples ran.  Lightbox is asked
with HTTP Basic (a viewer account); Orthanc without authentication.  Run as
`python -m bench.dicomweb`, in a private network namespace like bench.query.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

from appliance.imaging.cache import GROUP_CHARS, group_prefix
from bench import corpus, harness, query, servers
from bench.corpus import Corpus
from bench.harness import BenchError, log
from bench.procstat import ServerSampler
from bench.render import Client
from bench.servers import RunningServer

USER, PASSWORD = "benchviewer", "bench viewer password"
UID_ROOT = "1.2.826.0.1.3680043.8.498.77"  # pydicom's root + a branch of this bench's own
OHIF_FIELDS = "00081030,00080060"  # StudyDescription, Modality: what OHIF 3 adds to its study list
FRAMES_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"
WARMUP = 3
SEED_COPY_TIMEOUT = 300.0  # seconds for a copy of the CT series to be stored (and made ahead)


# --------------------------------------------------------------------------- corpus


def write_studies(out: Path, count: int) -> None:
    """``count`` studies of one 1x1 instance, 1000 per folder: one file made by pydicom, the
    others its bytes with fixed-width placeholders replaced (50x faster than a save each)."""
    width = len(str(count))  # UID components are 10**width + n: fixed width, no leading zero (PS3.5 9.1)
    placeholder = {
        "name": f"FAM0000^GIVEN{'0' * 6}", "pid": "Q0000000", "accession": "QA00000000", "date": "18000101",
        "study": f"{UID_ROOT}.1.{'9' * (width + 1)}", "series": f"{UID_ROOT}.2.{'9' * (width + 1)}",
        "sop": f"{UID_ROOT}.3.{'9' * (width + 1)}",
    }  # fmt: skip
    study = corpus.Study(patient_name=placeholder["name"], patient_id=placeholder["pid"], birth_date="19700101",
                         sex="O", study_uid=placeholder["study"], study_date=placeholder["date"], study_time="120000",
                         accession=placeholder["accession"], description="DICOMweb bench")  # fmt: skip
    ds = corpus.base_dataset(SecondaryCaptureImageStorage, study, placeholder["series"], "OT")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = placeholder["sop"]
    ds.InstanceNumber = 1
    corpus.set_pixels(ds, np.zeros((1, 1)), bits_stored=16, signed=False)
    corpus.save_part10(ds, out / "template")
    template = (out / "template").read_bytes()
    (out / "template").unlink()
    for key, value in placeholder.items():
        if template.count(value.encode()) != (3 if key == "date" else 2 if key == "sop" else 1):
            raise BenchError(f"the template holds its {key} placeholder an unexpected number of times")
    for n in range(count):
        patient = n // 2
        values = {
            "name": f"FAM{patient % query.SURNAMES:04d}^GIVEN{patient % 10**6:06d}", "pid": f"Q{patient:07d}",
            "accession": f"QA{n:08d}", "date": query.study_date(n), "study": f"{UID_ROOT}.1.{10**width + n}",
            "series": f"{UID_ROOT}.2.{10**width + n}", "sop": f"{UID_ROOT}.3.{10**width + n}",
        }  # fmt: skip
        data = template
        for key, value in values.items():
            data = data.replace(placeholder[key].encode(), value.encode())
        folder = out / f"{n // 1000:03d}"
        if n % 1000 == 0:
            folder.mkdir()
        (folder / f"{n:07d}.dcm").write_bytes(data)


def studies_corpus(count: int) -> Corpus:
    return corpus.load_or_build(f"dicomweb-studies-{count}", lambda out: write_studies(out, count))


# --------------------------------------------------------------------------- servers


class KeptClient(Client):
    """A kept-alive connection that, like a browser's, opens again when the server closed it
    while idle (Orthanc closes a keep-alive connection idle for a second)."""

    def get(self, path: str) -> bytes:
        try:
            return super().get(path)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.connection.close()
            return super().get(path)


class Target:
    """A running server and how to ask it: its port, its headers, its cache to empty."""

    def __init__(self, server: RunningServer, headers: dict[str, str], metadata_cache: Path | None) -> None:
        self.server = server
        self.label = server.label
        self.headers = headers
        self.metadata_cache = metadata_cache

    def client(self, accept: str = "application/dicom+json") -> Client:
        return KeptClient(self.server.http_port, {**self.headers, "Accept": accept})

    def empty_metadata_cache(self) -> None:
        if self.metadata_cache is not None and self.metadata_cache.exists():
            for entry in self.metadata_cache.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()


@contextlib.contextmanager
def lightbox(run_dir: Path, seeded: bool) -> Iterator[Target]:
    data = run_dir / "lightbox-data"
    data.mkdir(parents=True, exist_ok=seeded)
    if not seeded:
        servers.lightbox_cli("user", "add", USER, "--role", "viewer", "--password-stdin", "--data", str(data),
                             stdin=PASSWORD + "\n")  # fmt: skip
    env = {**servers.lightbox_env(), "LIGHTBOX_FIND_MAX_RESULTS": "0"}  # as Orthanc's LimitFindResults below
    with servers.lightbox_server(run_dir, "lightbox", data, env) as server:
        basic = "Basic " + b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        yield Target(server, {"Authorization": basic}, data / "cache" / "metadata")


@contextlib.contextmanager
def orthanc(run_dir: Path, seeded: bool) -> Iterator[Target]:
    # Orthanc cuts a find at 100 answers by default: unlimited, so that limit=101 is answered.
    with servers.orthanc_server(run_dir, "orthanc", [servers.DICOMWEB_PLUGIN], LimitFindResults=0,
                                LimitFindInstances=0) as server:  # fmt: skip
        yield Target(server, {}, None)


def seed(targets: Sequence[Target], parts: Sequence[Corpus], args: argparse.Namespace, work: Path) -> None:
    """Every corpus into every server, each part by parallel storescu, both servers at once."""
    deadline = time.monotonic() + args.seed_timeout

    def fill(target: Target) -> None:
        log_dir = work / f"seed-{target.label}"
        log_dir.mkdir()
        for n, part in enumerate(parts):
            started = time.perf_counter()
            if n == 0:  # the CT series: files, not folders
                servers.storescu(target.server, [[str(p) for p in part.files]], log_dir,
                                 max(1.0, deadline - time.monotonic()))  # fmt: skip
            else:
                query.store_folders(target.server, part, args.associations, log_dir,
                                    max(1.0, deadline - time.monotonic()))  # fmt: skip
            elapsed = time.perf_counter() - started
            log(f"{target.label}: {len(part)} instances stored in {elapsed:.0f} s ({len(part) / elapsed:.0f}/s)")

    with ThreadPoolExecutor(len(targets)) as pool:
        for done in [pool.submit(fill, target) for target in targets]:
            done.result()
    expected = sum(len(part) for part in parts)
    for target in targets:
        servers.wait_for_count(target.server, expected)


# --------------------------------------------------------------------------- figures


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def take_turns(targets: Sequence[Target], sample: Callable[[Target, int], float], repeat: int,
               warmup: int = WARMUP) -> dict[str, list[float]]:  # fmt: skip
    """``sample(target, i)`` for i in range(warmup + repeat), the servers in turn; the timed ones."""
    times: dict[str, list[float]] = {t.label: [] for t in targets}
    for i in range(warmup + repeat):
        for target in targets:
            seconds = sample(target, i)
            if i >= warmup:
                times[target.label].append(seconds)
    return times


def qido(targets: Sequence[Target], studies: int, repeat: int) -> dict[str, dict[str, list[float]]]:
    clients = {t.label: t.client() for t in targets}
    page = f"/dicom-web/studies?limit=101&offset=0&fuzzymatching=false&includefield={OHIF_FIELDS}"

    def name_query(i: int) -> str:
        surname = (i * 7919) % min(query.SURNAMES, max(1, studies // 2))
        return f"/dicom-web/studies?PatientName=FAM{surname:04d}*&fuzzymatching=false&limit=101&offset=0"

    def check(body: bytes, least: int) -> None:
        if body.count(b'"0020000D"') < least:
            raise BenchError(f"a QIDO answer with fewer than {least} studies: {body[:200]!r}")

    figures = {
        "qido-page": take_turns(targets, lambda t, i: timed(lambda: check(clients[t.label].get(page), 101)), repeat),
        "qido-name": take_turns(targets, lambda t, i: timed(lambda: check(clients[t.label].get(name_query(i)), 1)),
                                repeat),
    }  # fmt: skip
    for client in clients.values():
        client.close()
    return figures


def metadata(targets: Sequence[Target], ct: pydicom.Dataset, slices: int, repeat: int) -> dict[str, dict]:
    path = f"/dicom-web/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/metadata"
    clients = {t.label: t.client() for t in targets}

    def sample(target: Target, cold: bool) -> float:
        if cold:
            target.empty_metadata_cache()
        body = b""

        def get() -> None:
            nonlocal body
            body = clients[target.label].get(path)

        seconds = timed(get)
        if body.count(b'"00080018"') != slices:
            raise BenchError(f"{target.label}: series metadata of {body.count(b'00080018')} instances, not {slices}")
        return seconds

    cold = take_turns(targets, lambda t, i: sample(t, True), repeat, warmup=1)
    warm = take_turns(targets, lambda t, i: sample(t, False), repeat)
    for client in clients.values():
        client.close()
    return {"metadata-cold": cold, "metadata-warm": warm}


def fresh_copy(series: Corpus, out: Path) -> list[Path]:
    """The series' files with new Study, Series, SOP Instance and Frame of Reference UIDs."""
    study, frame, series_uid = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for source in series.files:
        ds = pydicom.dcmread(source)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series_uid, frame
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        paths.append(out / source.name)
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def made_ahead(target: Target, sops: Sequence[str]) -> bool:
    """Whether Lightbox's metadata cache holds an entry for every one of ``sops``."""
    folder = target.metadata_cache
    if folder is None or not folder.is_dir():
        return False
    return {group_prefix(sop) for sop in sops} <= {p.name[: GROUP_CHARS + 1] for p in folder.iterdir()}


def metadata_first(targets: Sequence[Target], series: Corpus, work: Path, samples: int) -> dict[str, dict]:
    clients = {t.label: t.client() for t in targets}
    times: dict[str, list[float]] = {t.label: [] for t in targets}
    for n in range(samples):
        paths = fresh_copy(series, Path(tempfile.mkdtemp(prefix="first-", dir=work)))
        head = pydicom.dcmread(paths[0], stop_before_pixels=True)
        sops = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]
        with ThreadPoolExecutor(len(targets)) as pool:
            for done in [pool.submit(servers.storescu, t.server, [[str(p) for p in paths]], paths[0].parent,
                                     SEED_COPY_TIMEOUT) for t in targets]:  # fmt: skip
                done.result()
        deadline = time.monotonic() + SEED_COPY_TIMEOUT
        for target in (t for t in targets if t.metadata_cache is not None):
            while not made_ahead(target, sops):
                if time.monotonic() > deadline:
                    raise BenchError(f"{target.label}: the copy's metadata was not made ahead")
                time.sleep(0.2)
        path = f"/dicom-web/studies/{head.StudyInstanceUID}/series/{head.SeriesInstanceUID}/metadata"
        for target in targets if n % 2 == 0 else reversed(targets):
            started = time.perf_counter()
            body = clients[target.label].get(path)
            times[target.label].append(time.perf_counter() - started)
            if body.count(b'"00080018"') != len(paths):
                raise BenchError(f"{target.label}: the copy's metadata lists {body.count(b'00080018')} instances")
        shutil.rmtree(paths[0].parent)  # the servers keep their copies
    for client in clients.values():
        client.close()
    return {"metadata-first": times}


def frames_per_second(target: Target, ct: pydicom.Dataset, sops: Sequence[str], connections: int) -> float:
    """Every slice's frame 1 fetched over ``connections`` kept-alive connections: frames/s."""
    base = f"/dicom-web/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances"
    todo = iter(sops)
    lock = threading.Lock()
    frame_bytes = ct.Rows * ct.Columns * 2

    def work() -> None:
        client = target.client(FRAMES_ACCEPT)
        try:
            while True:
                with lock:
                    sop = next(todo, None)
                if sop is None:
                    return
                body = client.get(f"{base}/{sop}/frames/1")
                if len(body) < frame_bytes:
                    raise BenchError(f"{target.label}: a frame of {len(body)} bytes, not {frame_bytes}+")
        finally:
            client.close()

    with ThreadPoolExecutor(connections) as pool:
        started = time.perf_counter()
        for done in [pool.submit(work) for _ in range(connections)]:
            done.result()
        return len(sops) / (time.perf_counter() - started)


# --------------------------------------------------------------------------- the run


def print_figures(name: str, times: dict[str, list[float]]) -> dict[str, float]:
    medians = {}
    for label, values in times.items():
        medians[label] = statistics.median(values)
        print(f"{label:<9} {name:<14} median={medians[label] * 1000:8.1f} ms  p95={harness.p95(values) * 1000:8.1f} ms"
              f"  n={len(values)}", flush=True)  # fmt: skip
    return medians


def benchmark(args: argparse.Namespace) -> None:
    if "orthanc" in args.servers:
        servers.check_tools(servers.ORTHANC, servers.STORESCU)
        if not os.path.exists(servers.DICOMWEB_PLUGIN):
            raise BenchError(f"no {servers.DICOMWEB_PLUGIN}: apt-get install -y orthanc-dicomweb")
    if "lightbox" in args.servers:
        servers.check_lightbox_importable()
    ct_series = corpus.ct_series(args.slices, np.random.default_rng(7))
    parts = [ct_series, studies_corpus(args.studies)]
    heads = [pydicom.dcmread(p, stop_before_pixels=True) for p in ct_series.files]
    ct, sops = heads[0], [h.SOPInstanceUID for h in heads]
    log(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min)")
    kept = contextlib.nullcontext(args.seeded) if args.seeded else harness.workdir("dicomweb", args)
    with kept as work, contextlib.ExitStack() as stack:
        starts = {"lightbox": lightbox, "orthanc": orthanc}
        targets = []
        for label in args.servers:
            (work / label).mkdir(exist_ok=bool(args.seeded))
            targets.append(stack.enter_context(starts[label](work / label, bool(args.seeded))))
        if args.seeded:  # holding the copies that earlier runs' metadata-first stored too
            for target in targets:
                servers.wait_for_count(target.server, sum(len(part) for part in parts), at_least=True)
        else:
            seed(targets, parts, args, work)
        subprocess.run(["sync"], check=False)
        medians: dict[str, dict[str, float]] = {}
        samplers = {t.label: ServerSampler(t.server.proc.pid) for t in targets}
        with contextlib.ExitStack() as sampling:
            for sampler in samplers.values():
                sampling.enter_context(sampler)
            figures = qido(targets, args.studies, args.repeat)
        figures |= metadata(targets, ct, args.slices, args.repeat)
        figures |= metadata_first(targets, ct_series, work, args.first_samples)
        for name, times in figures.items():
            medians[name] = print_figures(name, times)
        for label, sampler in samplers.items():
            print(f"{label:<9} {'qido-pss':<14} peak={sampler.peak_pss / 2**20:8.1f} MiB", flush=True)
        rates: dict[str, list[float]] = {t.label: [] for t in targets}
        for _ in range(args.frame_rounds):
            for target in targets:
                rates[target.label].append(frames_per_second(target, ct, sops, args.connections))
        for label, values in rates.items():
            print(f"{label:<9} {'frames':<14} median={statistics.median(values):8.1f} frames/s  "
                  f"connections={args.connections}  rounds={len(values)}", flush=True)  # fmt: skip
        log(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min)")
    if len(targets) == 2:
        for name, by_server in medians.items():
            print(f"ratio lightbox-speed/orthanc-speed {name:<14} {by_server['orthanc'] / by_server['lightbox']:6.2f}x")
        ratio = statistics.median(rates["lightbox"]) / statistics.median(rates["orthanc"])
        print(f"ratio lightbox-speed/orthanc-speed {'frames':<14} {ratio:6.2f}x", flush=True)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("dicomweb", __doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=100_000, help="generated studies (default 100000)")
    parser.add_argument("--slices", type=int, default=500, help="CT slices in the series (default 500)")
    parser.add_argument("--associations", type=int, default=4, help="parallel storescu per server (default 4)")
    parser.add_argument("--seed-timeout", type=float, default=3600, help="seconds the seeding may take (default 3600)")
    parser.add_argument("--repeat", type=int, default=30, help="timed samples per QIDO and metadata figure")
    parser.add_argument(
        "--first-samples",
        type=int,
        default=5,
        help="fresh copies of the CT series whose first metadata request is timed (default 5)",
    )
    parser.add_argument("--connections", type=int, default=6, help="parallel connections fetching frames (default 6)")
    parser.add_argument("--frame-rounds", type=int, default=3, help="times the series' frames are fetched")
    parser.add_argument("--seeded", type=Path, default=None,
                        help="the work dir of an earlier run with --keep (same --studies, --slices): measure again, "
                             "without seeding")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="2,000 studies, 100 slices, 10 samples")
    harness.add_servers(parser)
    harness.add_workdir(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.studies, args.slices, args.repeat, args.frame_rounds, args.first_samples = 2000, 100, 10, 2, 2
    if args.studies < 2 or args.slices < 1 or args.repeat < 2 or args.first_samples < 1:
        parser.error("need --studies >= 2, --slices >= 1, --repeat >= 2 and --first-samples >= 1")
    return args


if __name__ == "__main__":
    sys.exit(harness.run("dicomweb", sys.argv[1:], parse_args, benchmark))
