"""Backup benchmark: `lightbox backup run` and `lightbox restore` against a plain boto3
upload and download of the same files without encryption, to one local S3 server.

The corpus (CT slices of 0.5 MB, --slices, default 2000 = 1 GB; optionally --radiographs of
~10 MB, which go multipart) is imported into a Lightbox data folder; then, each in its own
process, timed with wall clock and peak RSS (the child's VmHWM):
  backup   lightbox backup run (age encryption, HMAC names, index snapshot, manifest)
           against a boto3 upload_file of every stored file, same concurrency, no encryption
  restore  lightbox restore (recovery key: the passphrase's scrypt would dominate a small run)
           against a boto3 download_file of every plain object
The S3 server is SeaweedFS `weed mini` (default; checks signatures, stores on disk) or moto's
(in memory, slower), both from tests/support/s3servers.py, which the backup tests use.  Run as
`python -m bench.backup` (no Orthanc, so no private network namespace).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import corpus, harness, servers
from bench.harness import MB, REPO_ROOT, BenchError, log
from bench.procstat import run_sampled

TESTS_DIR = REPO_ROOT / "tests"  # support/s3servers.py: the S3 servers, for this process and the plain-boto3 ones
sys.path.insert(0, str(TESTS_DIR))
from support.s3servers import ACCESS_KEY, SECRET_KEY, MotoS3, SeaweedS3  # noqa: E402

PASSPHRASE = "benchmark passphrase, not secret"
BUCKET = "bench"

# The baseline: what boto3 does with the same files and no encryption, same concurrency.
PLAIN_UPLOAD = """
import sys, pathlib
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
from support.s3servers import s3_client
from boto3.s3.transfer import TransferConfig
client = s3_client(sys.argv[2])
root = pathlib.Path(sys.argv[3])
config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=1, use_threads=False)
def send(path):
    client.upload_file(str(path), "bench", sys.argv[5] + path.name, Config=config)
with ThreadPoolExecutor(int(sys.argv[4])) as pool:
    list(pool.map(send, sorted(root.rglob("*.dcm"))))
"""
PLAIN_DOWNLOAD = """
import sys, pathlib
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
from support.s3servers import s3_client
from boto3.s3.transfer import TransferConfig
client = s3_client(sys.argv[2])
out = pathlib.Path(sys.argv[3]); out.mkdir(parents=True)
config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=1, use_threads=False)
keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix=sys.argv[5])
        for o in page.get("Contents", [])]
def fetch(key):
    client.download_file("bench", key, str(out / key.split("/")[-1]), Config=config)
with ThreadPoolExecutor(int(sys.argv[4])) as pool:
    list(pool.map(fetch, keys))
"""


def timed(cmd: list[str], log_path: Path, env: dict[str, str]) -> tuple[float, int]:
    """Run ``cmd``; return (wall seconds, peak RSS bytes) or raise with its output."""
    subprocess.run(["sync"], check=True)
    with open(log_path, "wb") as out:
        run = run_sampled(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    if run.returncode != 0:
        raise BenchError(f"{' '.join(cmd[:6])} failed ({run.returncode}):\n{harness.tail(log_path)}")
    return run.wall_s, run.peak_hwm


def benchmark(args: argparse.Namespace) -> None:
    servers.check_lightbox_importable()
    rng = np.random.default_rng(20261201)
    corpora = [corpus.ct_series(args.slices, rng)] + (
        [corpus.radiographs(args.radiographs, rng)] if args.radiographs else []
    )
    total = sum(c.total_bytes for c in corpora)
    count = sum(len(c) for c in corpora)
    figures: dict[str, list[tuple[float, int]]] = {}
    with harness.workdir("backup", args) as work:
        template = work / "template"
        for part in corpora:
            servers.lightbox_import(template, part.dicom_dir, work / "import.log")
        (work / "passphrase").write_text(PASSPHRASE)
        server = SeaweedS3(work / "weed").start() if args.server == "weed" else MotoS3().start()
        try:
            server.client().create_bucket(Bucket=BUCKET)
            log(f"corpus: {count} instances, {total / MB:.0f} MB; server: {args.server}")
            for rep in range(args.repeat):
                for step, sample in run_steps(args, server.endpoint, template, work, rep, count):
                    figures.setdefault(step, []).append(sample)
                log(f"run {rep + 1}/{args.repeat} done")
        finally:
            server.stop()
    rates = {}
    for name, runs in figures.items():
        wall = statistics.median(w for w, _ in runs)
        rss = max(r for _, r in runs)
        rates[name] = total / MB / wall
        print(f"{name:22s} {rates[name]:8.1f} MB/s  {count / wall:7.1f} inst/s  peak RSS {rss / 2**20:6.1f} MiB")
    for step in ("backup", "restore"):
        print(f"ratio {step} lightbox/plain-boto3: {rates[f'{step} lightbox'] / rates[f'{step} plain-boto3']:.2f}")


def run_steps(args: argparse.Namespace, endpoint: str, template: Path, work: Path, rep: int,
              count: int) -> list[tuple[str, tuple[float, int]]]:  # fmt: skip
    """One run: a copy of the template box backed up and restored by Lightbox, and its files
    sent and fetched by plain boto3; (step, (wall s, peak RSS bytes)) for each."""
    env = {**servers.lightbox_env(), "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    prefix, data, restored, plain_out = (
        f"run{rep}",
        work / f"box-{rep}",
        work / f"restored-{rep}",
        work / f"plain-{rep}",
    )
    shutil.copytree(template, data)  # a box that has never backed up
    sheet = servers.lightbox_cli("backup", "init", "--data", str(data), "--bucket", BUCKET, "--endpoint", endpoint,
                                 "--prefix", prefix, "--passphrase-file", str(work / "passphrase"), env=env)  # fmt: skip
    key = next(line.strip() for line in sheet.splitlines() if line.strip().startswith("AGE-SECRET-KEY-1"))
    (work / "key").write_text(key)
    plain = [sys.executable, "-c"]
    steps = [
        ("backup lightbox", servers.lightbox_command("backup", "run", "--data", str(data), "--backup-concurrency",
                                                     str(args.concurrency)), "backup.log"),
        ("backup plain-boto3", plain + [PLAIN_UPLOAD, str(TESTS_DIR), endpoint, str(data / "storage"),
                                        str(args.concurrency), f"plain{rep}/"], "plain-up.log"),
        ("restore lightbox", servers.lightbox_command("restore", "--from-bucket", BUCKET, "--endpoint", endpoint,
                                                      "--prefix", prefix, "--to", str(restored),
                                                      "--recovery-key-file", str(work / "key")), "restore.log"),
        ("restore plain-boto3", plain + [PLAIN_DOWNLOAD, str(TESTS_DIR), endpoint, str(plain_out),
                                         str(args.concurrency), f"plain{rep}/"], "plain-down.log"),
    ]  # fmt: skip
    samples = [(step, timed(cmd, work / log_name, env)) for step, cmd, log_name in steps]
    got = len(list((restored / "storage").rglob("*.dcm")))
    if got != count:
        raise BenchError(f"restore brought back {got} of {count} files")
    for folder in (data, restored, plain_out):
        shutil.rmtree(folder)
    return samples


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("backup", __doc__.split("\n")[0], netns=False)
    parser.add_argument("--slices", type=int, default=2000, help="CT slices of 0.5 MB (default 2000 = 1 GB)")
    parser.add_argument("--radiographs", type=int, default=0, help="also ~10 MB radiographs (multipart)")
    parser.add_argument("--server", choices=("weed", "moto"), default="weed")
    parser.add_argument("--concurrency", type=int, default=4, help="objects in flight, both sides (default 4)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each step; medians are printed")
    harness.add_workdir(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(harness.run("backup", sys.argv[1:], parse_args, benchmark, netns=False))
