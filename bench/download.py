"""Download benchmark: a whole study as a ZIP of DICOM media, Lightbox against Orthanc.

One study of --instances tiny instances (8x8, in 30 series: the DICOMDIR is what grows), loaded
into Lightbox with `appliance import` and into Orthanc with DCMTK storescu.  Each server is then
asked for the study's media ZIP --repeat times (Lightbox GET /api/studies/<uid>/archive.zip,
Orthanc GET /studies/<id>/media, both a ZIP with a DICOMDIR), read to its end on loopback:
  first-byte  time from the request to the first byte of the body
  total       time to the last byte
  peak PSS    the server's processes (summed, sampled every 50 ms) during the download, and
              its growth over the PSS before the first download
  CPU         the server's CPU seconds per download
Medians are printed, and Lightbox / Orthanc as ratios (below 1: Lightbox is faster or smaller).
Run as `python -m bench.download`, in a private network namespace like bench.ingest.
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
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from bench import harness, procstat, servers
from bench.harness import BenchError
from bench.web import PASSWORD, USER, Session

SERIES = 30


@dataclass(frozen=True)
class Target:
    label: str
    port: int
    pid: int
    path: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Sample:
    first_byte_s: float
    total_s: float
    size: int
    peak_pss: int
    cpu_s: float


def write_study(folder: Path, count: int) -> str:
    """``count`` 8x8 images of one study in SERIES series; the study UID.  One file is written
    by pydicom and copied with its SOP and series UIDs and numbers replaced by values of the same
    lengths (pydicom would take ~10 ms a file)."""
    sop_placeholder, series_placeholder = "2.25." + "1" * 39, "2.25." + "2" * 39
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, sop_placeholder
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), series_placeholder
    ds.PatientID, ds.PatientName, ds.Modality = "BENCH-ZIP", "Zip^Bench", "OT"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20261201", "101500", "ZIP1", "1"
    ds.SeriesNumber, ds.InstanceNumber = "00", "000000"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes(64)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    template = buffer.getvalue()
    series_at = template.index(series_placeholder.encode())
    series_number_at = template.index(b"\x20\x00\x11\x00IS") + 8
    instance_number_at = template.index(b"\x20\x00\x13\x00IS") + 8
    base = "2.25." + str(uuid.uuid4().int)[:20]  # + 19 digits: as long as the placeholders
    series = [f"{base}{9 * 10**18 + n:019d}".encode() for n in range(SERIES)]
    folder.mkdir(parents=True)
    for n in range(count):
        data = bytearray(template.replace(sop_placeholder.encode(), f"{base}{n:019d}".encode()))
        data[series_at : series_at + 44] = series[n % SERIES]
        data[series_number_at : series_number_at + 2] = b"%02d" % (n % SERIES + 1)
        data[instance_number_at : instance_number_at + 6] = b"%06d" % (n // SERIES + 1)
        (folder / f"{n:06d}.dcm").write_bytes(data)
    return str(ds.StudyInstanceUID)


def fetch(target: Target) -> Sample:
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=600)
    with procstat.ServerSampler(target.pid) as sampler:
        started = time.perf_counter()
        conn.request("GET", target.path, headers=target.headers)
        answer = conn.getresponse()
        if answer.status != 200:
            raise BenchError(f"{target.label}: HTTP {answer.status} for {target.path}")
        size = len(answer.read(1))
        first = time.perf_counter() - started
        while piece := answer.read(1 << 20):
            size += len(piece)
        total = time.perf_counter() - started
    conn.close()
    return Sample(first, total, size, sampler.peak_pss, sampler.cpu_s)


def service_pss(pid: int) -> int:
    return sum(procstat.pss_bytes(p) for p in procstat.descendants(pid))


def measure(target: Target, repeat: int) -> list[Sample]:
    before = service_pss(target.pid)
    samples = [fetch(target) for _ in range(repeat)]
    after = service_pss(target.pid)
    median = lambda get: statistics.median(get(s) for s in samples)  # noqa: E731
    peak = max(s.peak_pss for s in samples)
    print(f"{target.label:<9} zip={samples[0].size / 1e6:7.1f} MB  first-byte={median(lambda s: s.first_byte_s) * 1000:8.1f} ms"
          f"  total={median(lambda s: s.total_s):6.2f} s  cpu={median(lambda s: s.cpu_s):6.2f} s"
          f"  pss before={before / 2**20:6.1f} peak={peak / 2**20:6.1f} (+{(peak - before) / 2**20:5.1f}) "
          f"after={after / 2**20:6.1f} MB", flush=True)  # fmt: skip
    return samples


@contextlib.contextmanager
def lightbox(run_dir: Path, folder: Path, study_uid: str) -> Iterator[Target]:
    data = run_dir / "lightbox-data"
    servers.lightbox_import(data, folder, run_dir / "import.log")
    servers.lightbox_cli("user", "add", USER, "--role", "admin", "--password-stdin", "--data", str(data),
                         stdin=PASSWORD + "\n")  # fmt: skip
    with servers.lightbox_server(run_dir, "lightbox", data) as server:
        session = Session(server.http_port)
        session.request("GET", f"/api/studies/{study_uid}")  # warm, as a user opens the study first
        yield Target("lightbox", server.http_port, server.proc.pid, f"/api/studies/{study_uid}/archive.zip",
                     {"Cookie": session.cookie})  # fmt: skip


@contextlib.contextmanager
def orthanc(run_dir: Path, folder: Path, study_uid: str, count: int) -> Iterator[Target]:
    with servers.orthanc_server(run_dir, "orthanc") as server:
        servers.storescu(server, [["+sd", "+r", str(folder)]], run_dir)
        servers.wait_for_count(server, count)
        body = urllib.parse.quote(study_uid)
        found = servers.http(f"http://127.0.0.1:{server.http_port}/tools/lookup", body.encode(), "POST")
        orthanc_id = json.loads(found)[0]["ID"]
        yield Target("orthanc", server.http_port, server.proc.pid, f"/studies/{orthanc_id}/media", {})


def benchmark(args: argparse.Namespace) -> None:
    if "lightbox" in args.servers:
        servers.check_lightbox_importable()
    with harness.workdir("download", args) as workdir:
        harness.log(f"writing {args.instances} instances")
        folder = workdir / "corpus"
        study_uid = write_study(folder, args.instances)
        starters: dict[str, Callable[[Path], contextlib.AbstractContextManager[Target]]] = {
            "lightbox": lambda d: lightbox(d, folder, study_uid),
            "orthanc": lambda d: orthanc(d, folder, study_uid, args.instances),
        }
        results: dict[str, list[Sample]] = {}
        for name in args.servers:
            run_dir = workdir / name
            run_dir.mkdir()
            with starters[name](run_dir) as target:
                harness.log(f"{name}: {args.instances} instances loaded")
                results[name] = measure(target, args.repeat)
        if set(results) == {"lightbox", "orthanc"}:
            ours, theirs = results["lightbox"], results["orthanc"]
            for label, get in (("first-byte", lambda s: s.first_byte_s), ("total", lambda s: s.total_s),
                               ("cpu", lambda s: s.cpu_s), ("peak-pss", lambda s: s.peak_pss)):  # fmt: skip
                ratio = statistics.median(map(get, ours)) / statistics.median(map(get, theirs))
                print(f"zip-{args.instances} {label:<10} ratio lightbox/orthanc {ratio:.2f}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("download", __doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=5000, help="instances in the study (default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="downloads per server (default 3)")
    harness.add_servers(parser)
    harness.add_workdir(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(harness.run("download", sys.argv[1:], parse_args, benchmark))
