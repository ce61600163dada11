"""The backup's child process, ``python -m appliance.backup``: the service starts one for each
backup run, verification or set-up (appliance.backup.child), so that boto3 and botocore load
here and go when it exits.  It reads one job (JSON) on stdin, writes reports (JSON lines:
``progress``, ``busy``, ``sheet``, ``error``) on stdout and logs on stderr, as the service does.

SIGTERM (the service stopping) ends the work with ``Stopped``: the run is recorded as failed
by the same code that records any failure, and the next run goes on from there."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from appliance.backup.state import BackupState, Busy
from appliance.children import die_with_parent
from appliance.logs import configure_logging
from appliance.malloc import limit_malloc_arenas

Report = Callable[..., None]
PROGRESS_EVERY = 0.25  # seconds between progress reports: a verification checks many objects a second


class Stopped(Exception):
    """The service is stopping."""


def main() -> int:
    job = json.load(sys.stdin)
    reports = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # a stray print goes to the log, not into the reports
    die_with_parent(job["parent"])
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on a terminal reaches the group: the service decides
    configure_logging(job["log_level"])
    limit_malloc_arenas()
    state = BackupState(Path(job["data_dir"]), job["checksums"])
    try:
        WORK[job["kind"]](job, state, _reporter(reports))
    except Busy as exc:
        _reporter(reports)(busy=str(exc))
    finally:
        state.close()
    return 0


def _stop(*_: Any) -> None:
    raise Stopped("stopped: the service stopped during the run")


def _reporter(stream: TextIO) -> Report:
    def report(**values: Any) -> None:
        stream.write(json.dumps(values) + "\n")

    return report


def _progress(report: Report) -> Callable[[int, int], None]:
    last = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY or done >= total:
            last = now
            report(progress=[done, total])

    return progress


def _backup(job: dict[str, Any], state: BackupState, report: Report) -> None:
    from appliance.archive import Archive
    from appliance.backup.sync import BackupOptions, run_backup

    with Archive(Path(job["data_dir"])) as archive:  # default options: a backup never ingests or queries
        run_backup(archive, state, BackupOptions(**job["options"]), _progress(report))


def _verify(job: dict[str, Any], state: BackupState, report: Report) -> None:
    from appliance.backup.verify import verify_backup

    verify_backup(state, job["sample_pct"], _progress(report))


def _set_up(job: dict[str, Any], state: BackupState, report: Report) -> None:
    from appliance.backup.setup import init_backup
    from appliance.backup.target import Target, TargetError

    try:
        sheet = init_backup(state, Target(**job["target"]), job["passphrase"])
    except TargetError as exc:
        report(error=str(exc))
        return
    report(sheet={"secret_key": sheet.secret_key, "recipient": sheet.recipient, "created": sheet.created})


WORK: dict[str, Callable[[dict[str, Any], BackupState, Report], None]] = {
    "backup": _backup,
    "verify": _verify,
    "init": _set_up,
}

if __name__ == "__main__":
    sys.exit(main())
