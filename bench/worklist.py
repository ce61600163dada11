"""Modality Worklist benchmark: C-FIND worklist latency at --items scheduled orders, Lightbox
against DCMTK's wlmscpfs serving the same orders as .wl files (bench/worklists.py).

The orders (bench.worklists.orders: 10 family names, 4 modalities each with its station,
start dates over 14 days from today) go into Lightbox's index in one transaction before it
starts, and into a wlmscpfs data folder, one file each.  Timed, each on one association with
the keys a modality asks for, --queries of each kind after a warm-up; the client is
bench.wire's, the same for both:
  station-day  Modality, Scheduled Station AE Title and today's date  (~items/56 matches)
  patient-id   exact Patient ID                                       (1 match)
  accession    exact Accession Number                                 (1 match)
  name         Patient Name Family^Given, exact                       (~items/80 matches)
The latency of one query is from the C-FIND-RQ to the final response.  Run as
`python -m bench.worklist`, in a private network namespace like bench.query.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import date

from pydicom.dataset import Dataset

from appliance.archive import Archive
from appliance.dicom.requestor import AssociationFailed
from bench import harness, servers, wire, worklists
from bench.harness import BENCH_ENV, BenchError, log

SCU_AET = "BENCHMWL"
KINDS = ("station-day", "patient-id", "accession", "name")
PATIENT_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
                "RequestedProcedureID", "RequestedProcedureDescription", "StudyInstanceUID")  # fmt: skip
STEP_KEYS = ("Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
             "ScheduledProcedureStepStartTime", "ScheduledProcedureStepDescription", "ScheduledProcedureStepID",
             "ScheduledPerformingPhysicianName")  # fmt: skip


def identifier(kind: str, rng: random.Random, items: int) -> bytes:
    ds = Dataset()
    for key in PATIENT_KEYS:
        setattr(ds, key, "")
    step = Dataset()
    for key in STEP_KEYS:
        setattr(step, key, "")
    ds.ScheduledProcedureStepSequence = [step]
    if kind == "station-day":
        n = rng.randrange(len(worklists.MODALITIES))
        step.Modality, step.ScheduledStationAETitle = worklists.MODALITIES[n], worklists.STATIONS[n]
        step.ScheduledProcedureStepStartDate = date.today().strftime("%Y%m%d")
    elif kind == "patient-id":
        ds.PatientID = f"PID{rng.randrange(items):06d}"
    elif kind == "accession":
        ds.AccessionNumber = f"ACC{rng.randrange(items):07d}"
    else:
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = f"{rng.choice(worklists.FAMILIES)}^{rng.choice(worklists.GIVEN)}"
    return wire.encode_identifier(ds)


def timed(port: int, called_ae: str, label: str, kind: str, args: argparse.Namespace) -> tuple[float, float, float]:
    """(median s, p95 s, median matches) of one kind, on one association."""
    rng, times, hits = random.Random(kind), [], []
    try:
        with wire.FindClient("127.0.0.1", port, SCU_AET, called_ae, worklists.WORKLIST_MODEL) as client:
            for i in range(args.warmup + args.queries):
                query = identifier(kind, rng, args.items)
                started = time.perf_counter()
                *pending, final = client.find(query)
                elapsed = time.perf_counter() - started
                if final != 0x0000:
                    raise BenchError(f"{label}: worklist C-FIND {kind} ended with 0x{final:04X}")
                if i >= args.warmup:
                    times.append(elapsed)
                    hits.append(len(pending))
    except AssociationFailed as exc:
        raise BenchError(f"{label}: {exc}") from None
    figures = (statistics.median(times), harness.p95(times), statistics.median(hits))
    print(f"{label:<9} items={args.items:<6} {kind:<12} median={figures[0] * 1000:8.1f} ms  "
          f"p95={figures[1] * 1000:8.1f} ms  matches~{figures[2]:.0f}", flush=True)  # fmt: skip
    return figures


def benchmark(args: argparse.Namespace) -> None:
    BENCH_ENV["LIGHTBOX_QUERY_RETRIEVE_FROM"] = "any"  # the bench SCU is not a known node
    made = worklists.orders(args.items)
    results: dict[str, dict[str, tuple[float, float, float]]] = {}
    with harness.workdir("worklist", args) as workdir:
        data = workdir / "lightbox-data"
        log(f"scheduling {args.items} orders in Lightbox ...")
        with Archive(data) as archive:
            archive.worklist.create_many(made)
        log(f"writing {args.items} worklist files for wlmscpfs ...")
        folder = worklists.write_wl_files(workdir / "wl", made)
        with servers.lightbox_server(workdir, "lightbox", data) as server:
            results["lightbox"] = {kind: timed(server.dicom_port, server.aet, "lightbox", kind, args) for kind in KINDS}
        with worklists.wlmscpfs(folder, workdir / "wlmscpfs.log") as port:
            results["wlmscpfs"] = {kind: timed(port, worklists.WLM_AET, "wlmscpfs", kind, args) for kind in KINDS}
    for kind in KINDS:
        ratio = results["wlmscpfs"][kind][0] / results["lightbox"][kind][0]
        print(f"ratio wlmscpfs/lightbox items={args.items:<6} {kind:<12} median {ratio:6.2f}x")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("worklist", __doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000, help="scheduled orders (default 10000)")
    parser.add_argument("--queries", type=int, default=20, help="timed queries of each kind (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed queries of each kind first (default 3)")
    harness.add_workdir(parser)
    args = parser.parse_args(argv)
    if args.items < 100 or args.queries < 2:
        parser.error("need --items >= 100 and --queries >= 2")
    return args


if __name__ == "__main__":
    sys.exit(harness.run("worklist", sys.argv[1:], parse_args, benchmark))
