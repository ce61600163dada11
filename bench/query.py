"""C-FIND benchmark: STUDY-level query latency, Lightbox against Orthanc.

The corpus has one tiny instance (1x1 pixel) per study, two studies per patient, names
FAM0000^.. to FAM0999^.. and study dates spread over 28 years, in two parts: the first
--small studies, then the rest up to --studies.  Lightbox loads them with `appliance import`;
Orthanc by C-STORE (DCMTK storescu, --load-associations in parallel) up to --orthanc-max.

Timed, each on one association (Study Root, STUDY level, the keys a workstation's study list
asks for), --queries of each kind after a warm-up; the client is bench.wire's, on the wire
(Lightbox's own PDU code, responses counted but not decoded), the same for both servers:
  patient-id  exact Patient ID                     (2 matches)
  name        Patient Name wildcard FAMnnnn*       (~studies/1000 matches)
  month       Study Date range of one month        (~studies/336 matches)
The latency of one query is from the C-FIND-RQ to the final response.  Run as
`python -m bench.query`, in a private network namespace like bench.ingest.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

from appliance.dicom.requestor import AssociationFailed
from bench import corpus, harness, servers, wire
from bench.corpus import Corpus
from bench.harness import BENCH_ENV, BenchError, log
from bench.servers import RunningServer

SCU_AET = "BENCHFIND"
FIND_MODEL = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve Information Model - FIND
FIRST_DAY, SPAN_DAYS = date(1996, 1, 1), 28 * 365
SURNAMES = 1000
KINDS = ("patient-id", "name", "month")
RETURN_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyTime", "StudyDescription",
               "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "StudyInstanceUID")  # fmt: skip


def study_date(n: int) -> str:
    return (FIRST_DAY + timedelta(days=n * 7919 % SPAN_DAYS)).strftime("%Y%m%d")  # 7919: prime, spreads days


def write_studies(out: Path, first: int, last: int) -> None:
    """Studies first..last-1, 1000 per folder, one 1x1 SC instance each."""
    pixel = np.zeros((1, 1))
    for n in range(first, last):
        patient = n // 2
        study = corpus.Study(
            patient_name=f"FAM{patient % SURNAMES:04d}^GIVEN{patient:06d}", patient_id=f"Q{patient:07d}",
            birth_date=f"19{40 + patient % 60:02d}0{1 + patient % 9}1{patient % 10}", sex="MF"[patient % 2],
            study_uid=generate_uid(), study_date=study_date(n), study_time=f"{8 + n % 10:02d}{n % 60:02d}00",
            accession=f"QA{n:08d}", description="Query bench",
        )  # fmt: skip
        ds = corpus.base_dataset(SecondaryCaptureImageStorage, study, generate_uid(), "OT")
        ds.InstanceNumber = 1
        corpus.set_pixels(ds, pixel, bits_stored=16, signed=False)
        folder = out / f"{n // 1000:03d}"
        folder.mkdir(exist_ok=True)
        corpus.save_part10(ds, folder / f"{n:07d}.dcm")
        if (n + 1) % 10000 == 0:
            log(f"  corpus: {n + 1 - first}/{last - first}")


def corpus_parts(args: argparse.Namespace) -> list[tuple[int, Corpus]]:
    """(studies so far, corpus part): the first --small studies, then the rest."""
    bounds = [(0, args.small), (args.small, args.studies)] if args.studies > args.small else [(0, args.studies)]
    return [
        (last, corpus.load_or_build(f"query-{first}-{last}", lambda d, a=first, b=last: write_studies(d, a, b)))
        for first, last in bounds
    ]


def find_identifier(kind: str, value: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in RETURN_KEYS:
        setattr(ds, keyword, "")
    setattr(ds, {"patient-id": "PatientID", "name": "PatientName", "month": "StudyDate"}[kind], value)
    return ds


def query_values(kind: str, studies: int, count: int, rng: random.Random) -> list[str]:
    if kind == "patient-id":
        return [f"Q{rng.randrange(studies // 2):07d}" for _ in range(count)]
    if kind == "name":
        return [f"FAM{rng.randrange(SURNAMES):04d}*" for _ in range(count)]
    months = []
    for _ in range(count):
        start = FIRST_DAY + timedelta(days=rng.randrange(SPAN_DAYS - 31))
        first = start.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        months.append(f"{first:%Y%m%d}-{last:%Y%m%d}")
    return months


def timed_queries(
    server: RunningServer, kind: str, values: Sequence[str], warmup: int
) -> tuple[list[float], list[int]]:
    """Seconds per query and matches per query, on one association (the first `warmup` untimed)."""
    times, hits = [], []
    try:
        with wire.FindClient("127.0.0.1", server.dicom_port, SCU_AET, server.aet, FIND_MODEL) as client:
            for i, value in enumerate(values):
                identifier = wire.encode_identifier(find_identifier(kind, value))
                started = time.perf_counter()
                *pending, final = client.find(identifier)
                elapsed = time.perf_counter() - started
                if final != 0x0000:
                    raise BenchError(f"{server.label}: C-FIND {kind}={value} ended with 0x{final:04X}")
                if i >= warmup:
                    times.append(elapsed)
                    hits.append(len(pending))
    except AssociationFailed as exc:
        raise BenchError(f"{server.label}: {exc}") from None
    return times, hits


def measure(server: RunningServer, studies: int, args: argparse.Namespace) -> dict[str, tuple[float, float, float]]:
    """kind -> (median s, p95 s, median matches), one line printed per kind."""
    figures = {}
    for kind in KINDS:
        values = query_values(kind, studies, args.queries + args.warmup, random.Random(f"{kind}-{studies}"))
        subprocess.run(["sync"], check=False)
        times, hits = timed_queries(server, kind, values, args.warmup)
        figures[kind] = (statistics.median(times), harness.p95(times), statistics.median(hits))
        print(f"{server.label:<8} studies={studies:<7} {kind:<10} median={figures[kind][0] * 1000:7.1f} ms  "
              f"p95={figures[kind][1] * 1000:7.1f} ms  matches~{figures[kind][2]:.0f}", flush=True)  # fmt: skip
    return figures


def store_folders(
    server: RunningServer, part: Corpus, associations: int, log_dir: Path, timeout: float | None = None
) -> None:
    """C-STORE a corpus part with DCMTK storescu, its folders dealt out over parallel associations."""
    folders = sorted(str(p) for p in part.dicom_dir.iterdir() if p.is_dir())
    inputs = [["+sd", "+r", *folders[n::associations]] for n in range(min(associations, len(folders)))]
    servers.storescu(server, inputs, log_dir, timeout)


def lightbox_runs(
    parts: list[tuple[int, Corpus]], workdir: Path
) -> Iterator[tuple[int, Callable[[Path], AbstractContextManager[RunningServer]]]]:
    """Import the parts one after the other into one data dir; after each, (studies so far,
    how to start a server on it)."""
    data = workdir / "lightbox-data"
    for studies, part in parts:
        log(f"importing {len(part)} instances into Lightbox ...")
        started = time.perf_counter()
        servers.lightbox_import(data, part.dicom_dir, workdir / f"import-{studies}.log")
        log(f"imported in {time.perf_counter() - started:.0f} s")
        yield studies, lambda run_dir: servers.lightbox_server(run_dir, "lightbox", data)


def benchmark(args: argparse.Namespace) -> None:
    parts = corpus_parts(args)
    BENCH_ENV["LIGHTBOX_QUERY_RETRIEVE_FROM"] = "any"  # the bench SCU is not a known node
    results: dict[tuple[str, int], dict] = {}
    with harness.workdir("query", args) as workdir:
        if "lightbox" in args.servers:
            servers.check_lightbox_importable()
            for studies, start in lightbox_runs(parts, workdir):
                run_dir = workdir / f"lightbox-{studies}"
                run_dir.mkdir()
                with start(run_dir) as server:
                    results["lightbox", studies] = measure(server, studies, args)
        if "orthanc" in args.servers:
            run_dir = workdir / "orthanc"
            run_dir.mkdir()
            with servers.orthanc_server(run_dir, "orthanc") as server:
                servers.orthanc_modality(server, "scu", SCU_AET, 1)  # Orthanc answers C-FIND only from those it knows
                for studies, part in parts:
                    if studies > args.orthanc_max:
                        break
                    log(f"storing {len(part)} instances into Orthanc ...")
                    started = time.perf_counter()
                    store_folders(server, part, args.load_associations, run_dir)
                    log(f"stored in {time.perf_counter() - started:.0f} s")
                    results["orthanc", studies] = measure(server, studies, args)
        for (label, studies), figures in sorted(results.items()):
            if label == "lightbox" and ("orthanc", studies) in results:
                for kind in KINDS:
                    ratio = results["orthanc", studies][kind][0] / figures[kind][0]
                    print(f"ratio orthanc/lightbox studies={studies:<7} {kind:<10} median {ratio:5.2f}x")


def add_corpus_size(parser: argparse.ArgumentParser) -> None:
    """--studies and --small, shared with bench.web, which measures the same corpus."""
    parser.add_argument("--studies", type=int, default=100_000, help="studies in the largest archive (default 100000)")
    parser.add_argument(
        "--small", type=int, default=10_000, help="studies in the first, smaller archive (default 10000)"
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("query", __doc__.split("\n")[0])
    add_corpus_size(parser)
    parser.add_argument(
        "--orthanc-max", type=int, default=10_000, help="largest archive loaded into Orthanc (default 10000)"
    )
    parser.add_argument("--load-associations", type=int, default=4, help="parallel storescu loading Orthanc")
    parser.add_argument("--queries", type=int, default=30, help="timed queries of each kind (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed queries of each kind first (default 5)")
    harness.add_servers(parser)
    harness.add_workdir(parser)
    args = parser.parse_args(argv)
    if not 0 < args.small <= args.studies or args.queries < 2:
        parser.error("need 0 < --small <= --studies and --queries >= 2")
    return args


if __name__ == "__main__":
    sys.exit(harness.run("query", sys.argv[1:], parse_args, benchmark))
