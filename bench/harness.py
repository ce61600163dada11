"""How every bench runs: its entry point and options, the private network namespace, the
environment its peers get, its work folder, its log and error lines, and figure statistics."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
MB = 1_000_000  # figures are in decimal megabytes
SERVERS = ("lightbox", "orthanc")

# Debian's DCMTK and Orthanc leave Nagle's algorithm on unless told otherwise.  Benches add
# Lightbox settings (LIGHTBOX_*) here before they start a server.
BENCH_ENV = {**os.environ, "TCP_NODELAY": "1"}


class BenchError(Exception):
    """A failure worth a one-line explanation rather than a traceback."""


def log(message: str) -> None:
    """Progress, on stderr: stdout holds only the figures."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 20) -> str:
    """The end of a peer's log, indented, for an error message."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no output)"
    return "\n".join("    " + line for line in text[-lines:]) or "    (empty)"


def p95(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


# --------------------------------------------------------------------------- options


def parser(name: str, description: str, netns: bool = True) -> argparse.ArgumentParser:
    """The options of `python -m bench.<name>`; a bench run in a network namespace is told so
    by a hidden flag when it is re-run there."""
    made = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    if netns:
        made.add_argument("--inside-netns", action="store_true", help=argparse.SUPPRESS)
    return made


def add_servers(parser: argparse.ArgumentParser) -> None:
    def servers(text: str) -> list[str]:
        chosen = text.split(",")
        if set(chosen) - set(SERVERS):
            raise argparse.ArgumentTypeError(f"a comma-separated subset of {','.join(SERVERS)}, not {text!r}")
        return chosen

    parser.add_argument(
        "--servers", type=servers, default=list(SERVERS), help="comma-separated subset of lightbox,orthanc"
    )


def add_workdir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=None, help="where server data dirs go (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep server data dirs and logs")


@contextlib.contextmanager
def workdir(name: str, args: argparse.Namespace) -> Iterator[Path]:
    """A fresh folder under --workdir for the run's servers and logs, removed unless --keep."""
    path = Path(tempfile.mkdtemp(prefix=f"lightbox-{name}-", dir=args.workdir))
    log(f"work dir {path}")
    try:
        yield path
    finally:
        if args.keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- running


def run(
    name: str,
    argv: Sequence[str],
    parse: Callable[[Sequence[str]], argparse.Namespace],
    benchmark: Callable[[argparse.Namespace], None],
    netns: bool = True,
) -> int:
    """The entry point of `python -m bench.<name>`: its exit status.  With ``netns``, the bench
    re-runs itself in a private network namespace first."""
    args = parse(argv)
    try:
        if netns and not args.inside_netns:
            return reexec_in_netns(f"bench.{name}", argv)
        benchmark(args)
    except BenchError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def reexec_in_netns(module: str, argv: Sequence[str]) -> int:
    """Run ``python -m module argv`` again inside a private network namespace with only
    loopback up: Orthanc and DCMTK's storescp cannot bind to 127.0.0.1 only."""
    unshare = shutil.which("unshare")
    ip = shutil.which("ip") or "/usr/sbin/ip"
    if unshare is None:
        raise BenchError("needs unshare(1) (util-linux) to run in a private network namespace")
    flags = ["-n"] if os.geteuid() == 0 else ["-r", "-n"]
    probe = subprocess.run([unshare, *flags, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise BenchError(f"cannot create a private network namespace (run as root): {probe.stderr.strip()}")
    shell = f'{ip} link set lo up && exec "$0" "$@"'
    cmd = [unshare, *flags, "--", "sh", "-c", shell, sys.executable, "-m", module, *argv, "--inside-netns"]
    return subprocess.run(cmd, env=with_repo_on_path(os.environ)).returncode


def with_repo_on_path(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the repository first on PYTHONPATH, wherever the command runs from."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path}
