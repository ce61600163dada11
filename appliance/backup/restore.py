"""`lightbox restore`: a new box rebuilt from the bucket alone (plus its credentials and the
passphrase or recovery key): the newest manifest, its index snapshot, then every live object,
each checked against the manifest before it goes into storage."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from appliance.archive import Archive, RestoreError, install_index
from appliance.backup import crypto, manifest, transfer
from appliance.backup.bucket import open_bucket
from appliance.backup.state import CURSOR
from appliance.backup.target import INDEX, OBJECTS, Target, explain
from appliance.backup.verify import NoBackup, fetch_manifest
from appliance.malloc import return_large_buffers_to_the_os

LOG = logging.getLogger("lightbox.backup")
Progress = Callable[[int, int], None]
PARALLEL = 4  # objects downloaded at once
WINDOW = 64  # objects submitted ahead of the ones finished: bounded memory for any manifest


class RestoreFailed(Exception):
    pass


@dataclass
class RestoreReport:
    manifest: str = ""
    restored: int = 0
    restored_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def restore_from_bucket(
    target: Target, identity: crypto.Identity, data_dir: Path, progress: Progress | None = None
) -> RestoreReport:
    """Rebuild an archive in the empty folder ``data_dir``; raises RestoreFailed when there is
    nothing to restore from, and reports objects that could not be restored."""
    report = RestoreReport()
    if data_dir.exists() and any(data_dir.iterdir()):
        raise RestoreFailed(f"{data_dir} is not empty; restore into a new folder")
    work = data_dir / "restore-tmp"
    work.mkdir(parents=True)
    return_large_buffers_to_the_os()
    try:
        with open_bucket(target, "when_required") as client:
            try:
                report.manifest, header = fetch_manifest(client, target, identity, work / "manifest.jsonl")
                snapshot = work / "index.sqlite"
                transfer.check(
                    transfer.download(client, target, INDEX + header.snapshot, identity, snapshot),
                    INDEX + header.snapshot,
                    header.snapshot_sha256,
                    header.snapshot_size,
                )
            except (transfer.ObjectProblem, manifest.ManifestError, NoBackup) as exc:
                raise RestoreFailed(str(exc)) from None
            except Exception as exc:
                raise RestoreFailed(explain(exc, target)) from None
            install_index(data_dir, snapshot)
            with Archive(data_dir) as archive:
                archive.set_cursor(CURSOR, 0)  # this box has not backed anything up yet
                _restore_objects(
                    client, target, identity, archive, work / "manifest.jsonl", header.objects, report, progress
                )
                repaired = archive.reconcile()
                for sop_uid in repaired.missing_files:
                    LOG.warning("restore_row_without_object sop=%s", sop_uid)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    LOG.info(
        "restore ok=%s restored=%d bytes=%d problems=%d",
        report.ok,
        report.restored,
        report.restored_bytes,
        len(report.problems),
    )
    return report


def _restore_objects(
    client: object,
    target: Target,
    identity: crypto.Identity,
    archive: Archive,
    manifest_path: Path,
    total: int,
    report: RestoreReport,
    progress: Progress | None,
) -> None:
    lock = threading.Lock()
    window = threading.BoundedSemaphore(WINDOW)
    done = 0

    def one(entry: manifest.Entry) -> None:
        nonlocal done
        spooled = archive.storage.spool_path()
        try:
            name = OBJECTS + entry.name
            transfer.check(transfer.download(client, target, name, identity, spooled), name, entry.sha256, entry.size)
            archive.adopt_restored(spooled, entry.file_key, entry.sha256, entry.size)
            with lock:
                report.restored += 1
                report.restored_bytes += entry.size
        except (transfer.ObjectProblem, RestoreError) as exc:
            with lock:
                report.problems.append(f"{exc} (sop_instance_uid={entry.sop_uid})")
        except Exception as exc:
            with lock:
                report.problems.append(f"ERROR {OBJECTS}{entry.name}: {explain(exc, target)}")
        finally:
            spooled.unlink(missing_ok=True)
            window.release()
            with lock:
                done += 1
                if progress:
                    progress(done, total)

    with ThreadPoolExecutor(PARALLEL, thread_name_prefix="restore") as pool:
        for entry in manifest.entries(manifest_path):
            if entry.deleted_at is not None:
                with lock:
                    done += 1  # kept in the bucket for the retention period, not part of the archive
                continue
            window.acquire()
            pool.submit(one, entry)
