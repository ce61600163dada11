"""Proving the backup: download and decrypt the newest manifest, its index snapshot and a
sample of the objects (or all of them), and check each against the manifest's SHA-256.

A scheduled sample is a small restore drill; its date is the "last verified restore".
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.backup import crypto, manifest, transfer
from appliance.backup.state import BackupState
from appliance.backup.target import (
    INDEX,
    MANIFESTS,
    OBJECTS,
    Target,
    explain,
    list_keys,
    with_retries,
)

LOG = logging.getLogger("lightbox.backup")
Progress = Callable[[int, int], None]


class NoBackup(Exception):
    pass


@dataclass
class VerifyReport:
    manifest: str = ""
    checked: int = 0
    checked_bytes: int = 0
    total: int = 0
    problems: list[str] = field(default_factory=list)  # one line each: KIND name: detail

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.manifest)


def fetch_manifest(client: Any, target: Target, identity: crypto.Identity, dest: Path) -> tuple[str, manifest.Header]:
    """Download and decrypt the newest manifest into ``dest``; return its name and header."""
    names = sorted(name for name, _ in with_retries(lambda: list(list_keys(client, target, MANIFESTS)), "list"))
    if not names:
        raise NoBackup(f"no manifest at {target.describe()}: no backup run has completed")
    name = names[-1]
    transfer.download(client, target, MANIFESTS + name, identity, dest)
    return name, manifest.read_header(dest)


def verify_backup(
    state: BackupState,
    sample_pct: float = 100.0,
    progress: Progress | None = None,
    rng: random.Random | None = None,
    stopping: threading.Event | None = None,
) -> VerifyReport:
    report = VerifyReport()
    with state.lock():
        run_id = state.begin_run("verify")
        try:
            with state.bucket(stopping) as client:
                _verify(state, client, sample_pct, progress, rng or random.Random(), report)
        except (transfer.ObjectProblem, manifest.ManifestError, NoBackup, OSError) as exc:
            report.problems.append(str(exc))
        except Exception as exc:  # the bucket: credentials, network
            report.problems.append(f"ERROR {explain(exc, state.target())}")
        detail = {**report.__dict__, "problems": report.problems[:50], "sample_pct": sample_pct}
        state.finish_run(run_id, report.ok, detail)
    LOG.log(
        logging.INFO if report.ok else logging.ERROR,
        "backup_verify ok=%s manifest=%s checked=%d problems=%d",
        report.ok,
        report.manifest or "-",
        report.checked,
        len(report.problems),
    )
    return report


def _verify(
    state: BackupState,
    client: Any,
    sample_pct: float,
    progress: Progress | None,
    rng: random.Random,
    report: VerifyReport,
) -> None:
    target = state.target()
    identity = state.identity()
    local = state.temp_file("verify-manifest.jsonl")
    try:
        report.manifest, header = fetch_manifest(client, target, identity, local)
        snapshot = INDEX + header.snapshot
        _check(
            report,
            lambda: transfer.check(
                transfer.download(client, target, snapshot, identity, None),
                snapshot,
                header.snapshot_sha256,
                header.snapshot_size,
            ),
        )
        report.total = header.objects + 1  # and the index snapshot
        verified: list[str] = []
        sampled = done = 0
        for done, entry in enumerate(manifest.entries(local), 1):
            last = done == header.objects
            # Streamed: a manifest of a million entries is never in memory.  A sample holds at least one object.
            if sample_pct >= 100 or rng.random() * 100 < sample_pct or (last and not sampled and sample_pct > 0):
                sampled += 1
                if _check(report, functools.partial(_object, client, target, identity, entry), entry.sop_uid):
                    verified.append(entry.name)
                    report.checked_bytes += entry.size
            if len(verified) >= 500:
                state.mark_verified(verified, time.time())
                verified.clear()
            if progress:
                progress(done, header.objects)
        state.mark_verified(verified, time.time())
        if done != header.objects:
            report.problems.append(
                f"CORRUPT {MANIFESTS}{report.manifest}: lists {done} objects, its header says {header.objects}"
            )
    finally:
        local.unlink(missing_ok=True)


def _object(client: Any, target: Target, identity: crypto.Identity, entry: manifest.Entry) -> None:
    name = OBJECTS + entry.name
    transfer.check(transfer.download(client, target, name, identity, None), name, entry.sha256, entry.size)


def _check(report: VerifyReport, action: Callable[[], None], sop_uid: str = "") -> bool:
    report.checked += 1
    try:
        action()
        return True
    except transfer.ObjectProblem as exc:
        report.problems.append(f"{exc}" + (f" (sop_instance_uid={sop_uid})" if sop_uid else ""))
        return False
