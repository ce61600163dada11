"""One backup run: follow the change log from the cursor, upload each new instance once,
record deletions (purged from the bucket only after the retention period), then upload an
index snapshot and, last, the manifest that makes the run count.

Order, so that the newest manifest always describes a complete backup: the index snapshot
is taken first (it holds changes up to S), the instances of every change up to S are
uploaded, then the snapshot, then the manifest.  A crash anywhere leaves the previous
manifest in force; the next run finds what was already uploaded and goes on.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from appliance.archive import REBUILT_KIND, REMOVED_KINDS, STORED_KINDS, SUPERSEDED_KIND, Archive, InstanceFile
from appliance.backup import crypto, manifest, transfer
from appliance.backup.state import CURSOR, BackupState, ObjectRow
from appliance.backup.target import (
    INDEX,
    MANIFESTS,
    OBJECTS,
    PART_SIZE,
    Target,
    error_code,
    explain,
    with_retries,
)
from appliance.malloc import return_large_buffers_to_the_os

LOG = logging.getLogger("lightbox.backup")

BATCH = 200  # changes per step: the cursor moves after each step's uploads are recorded
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BackupOptions:
    bandwidth_kbps: int = 0  # 0: unlimited
    concurrency: int = 4  # objects uploaded at once
    retention_days: float = 30.0


@dataclass
class RunReport:
    uploaded: int = 0
    uploaded_bytes: int = 0  # plaintext
    already_there: int = 0
    deleted: int = 0
    purged: int = 0
    purge_refused: int = 0  # kept by a key without delete right or Object Lock
    damaged: int = 0  # stored files that no longer match the index: left out (tried again), the run fails
    manifest: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


class BackupFailed(Exception):
    pass


class _Damaged(Exception):
    """A stored file no longer matches its hash in the index: it is not backed up."""

    def __init__(self, sop_uid: str, file_key: str) -> None:
        super().__init__(file_key)
        self.sop_uid = sop_uid


def run_backup(
    archive: Archive,
    state: BackupState,
    options: BackupOptions,
    progress: Progress | None = None,
    stopping: threading.Event | None = None,
) -> RunReport:
    """Run one backup; the report says what happened (``error`` set when it failed, also when
    ``stopping`` was set before its end)."""
    report = RunReport()
    with state.lock():
        run_id = state.begin_run("backup")
        try:
            with state.bucket(stopping) as client:
                run = _Run(archive, state, options, report, progress, client)
                completed = False
                try:
                    run.go(run_id)
                    completed = True
                finally:
                    run.finish(completed)
        except (BackupFailed, OSError) as exc:
            report.error = str(exc)
        except Exception as exc:  # the bucket: keep the box serving, say what went wrong
            report.error = explain(exc, state.target())
        state.finish_run(run_id, report.ok, report.__dict__)
    if report.ok:  # the manifest now lists the originals an identity edit kept: they may go
        archive.corrections.release_superseded(backed_up_through=archive.cursor(CURSOR))
    LOG.log(
        logging.INFO if report.ok else logging.ERROR,
        "backup_run ok=%s uploaded=%d bytes=%d deleted=%d purged=%d manifest=%s%s",
        report.ok,
        report.uploaded,
        report.uploaded_bytes,
        report.deleted,
        report.purged,
        report.manifest or "-",
        f" error={report.error!r}" if report.error else "",
    )
    return report


class _Run:
    def __init__(
        self,
        archive: Archive,
        state: BackupState,
        options: BackupOptions,
        report: RunReport,
        progress: Progress | None,
        client: Any,
    ) -> None:
        self.archive = archive
        self.state = state
        self.options = options
        self.report = report
        self.progress = progress
        self.target: Target = state.target()
        self.identity = state.identity()
        self.recipient = self.identity.to_public()
        self.names = crypto.names_key(self.identity)
        self.client = client
        return_large_buffers_to_the_os()
        self.failed = threading.Event()  # one upload gave up: the others stop too
        self.multipart = threading.Semaphore(1)  # one large file at a time: one 5 MiB part in memory
        self.damaged: set[str] = set()  # SOP Instance UIDs found damaged by this run
        self.damaged_before: list[str] = json.loads(state.get("damaged") or "[]")
        self.bandwidth = transfer.Bandwidth(options.bandwidth_kbps * 1024) if options.bandwidth_kbps > 0 else None

    def go(self, run_id: int) -> None:
        snapshot = self.state.temp_file("index-snapshot.sqlite")
        seq = self.archive.snapshot_index(snapshot)
        self._retry_damaged()
        self._follow(self.archive.cursor(CURSOR), seq)
        self._purge()
        changed = self.report.purged or self.report.uploaded or self.report.already_there
        if str(seq) == self.state.get("manifest_seq") and not changed:
            snapshot.unlink()
            return  # nothing new: the last manifest still describes the backup
        snap_name = f"{run_id:08d}.age"
        snap = transfer.upload_file(
            self.client, self.target, INDEX + snap_name, snapshot, self.recipient, self.bandwidth
        )
        snapshot.unlink()
        self._write_manifest(run_id, seq, snap_name, snap)

    def finish(self, completed: bool) -> None:
        """Remember damaged files for the next run and the status; fail a run that found any.
        A run that stopped early has not looked at all of them again: keep the old ones."""
        if not completed:
            self.damaged.update(self.damaged_before)
        self.state.put("damaged", json.dumps(sorted(self.damaged)))
        self.report.damaged = len(self.damaged)
        if completed and self.damaged:
            raise BackupFailed(
                f"{len(self.damaged)} stored file(s) no longer match their hash in the index and were "
                "not backed up: run lightbox verify"
            )

    def _retry_damaged(self) -> None:
        """Files found damaged by earlier runs: back up those that are sound again (replaced,
        repaired), forget those gone, keep the rest."""
        for sop_uid in self.damaged_before:
            instance = self.archive.stored_instance(sop_uid)
            if instance is None:
                continue
            name = crypto.object_name(self.names, instance.sop_uid, instance.sha256)
            if not self.state.has_object(name):
                self._record_or_note(functools.partial(self._upload, name, instance, False))

    def _follow(self, cursor: int, until: int) -> None:
        total = max(0, until - cursor)
        start = cursor
        # Changes up to this seq may have been uploaded by a run that died before recording them.
        unsure_until = int(self.state.get("in_flight", "0") or 0)
        with ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="backup-upload") as pool:
            while cursor < until:
                changes = [c for c in self.archive.changes_after(cursor, BATCH) if c.seq <= until]
                if not changes:
                    break
                self.state.put("in_flight", str(changes[-1].seq))
                uploads: dict[str, Future] = {}
                removals: list = []  # applied once this step's uploads are recorded
                for change in changes:
                    if change.kind in STORED_KINDS:
                        instance = self.archive.stored_instance(change.sop_uid)
                        if instance is None:
                            continue  # gone again since; its removal is a later change
                        name = crypto.object_name(self.names, instance.sop_uid, instance.sha256)
                        if self.state.has_object(name):
                            self.state.revive(name)  # deleted once, now back with the same bytes
                        elif name not in uploads:
                            uploads[name] = pool.submit(self._upload, name, instance, change.seq <= unsure_until)
                    elif change.kind in REMOVED_KINDS:
                        if change.kind == SUPERSEDED_KIND:  # the original an edit kept: back it up first
                            for original in self.archive.corrections.superseded(change.sop_uid):
                                name = crypto.object_name(self.names, original.sop_uid, original.sha256)
                                if not self.state.has_object(name) and name not in uploads:
                                    uploads[name] = pool.submit(
                                        self._upload, name, original, change.seq <= unsure_until
                                    )
                        removals.append(change)
                    elif change.kind == REBUILT_KIND:
                        self._sweep_deleted(change.at)
                try:
                    with self.state.batch():
                        for future in uploads.values():
                            self._record_or_note(future.result)  # raises a failure: the cursor stays put
                except BaseException:
                    for future in uploads.values():
                        future.cancel()  # do not wait out every queued upload's retries
                    raise
                for change in removals:
                    current = self.archive.stored_instance(change.sop_uid)
                    self.report.deleted += self.state.mark_deleted(
                        change.sop_uid, current.sha256 if current else None, change.at
                    )
                cursor = changes[-1].seq
                self.archive.set_cursor(CURSOR, cursor)
                if self.progress:
                    self.progress(cursor - start, total)

    def _upload(self, name: str, instance: InstanceFile, unsure: bool) -> tuple[ObjectRow, bool] | None:
        """Upload one instance unless an earlier, interrupted run did (runs in a pool thread);
        return its row and whether it was sent now."""
        if self.failed.is_set():
            raise BackupFailed("stopped after an earlier upload failed")
        try:
            return self._upload_once(name, instance, unsure)
        except _Damaged:
            raise  # this file only; the others go on
        except BaseException:
            self.failed.set()
            raise

    def _upload_once(self, name: str, instance: InstanceFile, unsure: bool) -> tuple[ObjectRow, bool] | None:
        key = OBJECTS + name
        found_size = self._uploaded_size(key) if unsure else None
        sent_now = found_size is None
        if found_size is not None:
            stored_size = found_size
        else:
            path = self.archive.storage.path(instance.file_key)
            try:
                with self.multipart if instance.size > PART_SIZE else contextlib.nullcontext():
                    sent = transfer.upload_file(
                        self.client, self.target, key, path, self.recipient, self.bandwidth, instance.sha256
                    )
            except FileNotFoundError:
                return None  # deleted since the change was read; its deletion change follows
            except transfer.SourceChanged:
                raise _Damaged(instance.sop_uid, instance.file_key) from None
            stored_size = sent.stored_size
        row = ObjectRow(
            name,
            instance.sop_uid,
            instance.file_key,
            instance.size,
            instance.sha256,
            stored_size,
            time.time(),
            None,
            None,
        )
        return row, sent_now

    def _record_or_note(self, upload: Callable[[], tuple[ObjectRow, bool] | None]) -> None:
        try:
            result = upload()
        except _Damaged as exc:
            LOG.error("backup_damaged_file key=%s", exc)
            self.damaged.add(exc.sop_uid)
            return
        if result is None:
            return
        row, sent_now = result
        self.state.add_object(row)
        if sent_now:
            self.report.uploaded += 1
            self.report.uploaded_bytes += row.size
        else:
            self.report.already_there += 1

    def _uploaded_size(self, key: str) -> int | None:
        try:
            head = with_retries(
                lambda: self.client.head_object(Bucket=self.target.bucket, Key=self.target.key(key)), "head"
            )
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head["ContentLength"]

    def _sweep_deleted(self, at: float) -> None:
        """After rebuild-index no per-instance deletions were logged: compare every live object."""
        for row in list(self.state.objects(live_only=True)):
            current = self.archive.stored_instance(row.sop_uid)
            if current is None or current.sha256 != row.sha256:
                self.report.deleted += self.state.mark_deleted(row.sop_uid, current.sha256 if current else None, at)

    def _purge(self) -> None:
        """Delete objects whose instance left the archive more than the retention ago.  A key
        without delete right, or Object Lock, refuses: the object stays, and is forgotten."""
        before = time.time() - self.options.retention_days * 86400
        for name in self.state.expired(before):
            try:
                with_retries(
                    functools.partial(
                        self.client.delete_object, Bucket=self.target.bucket, Key=self.target.key(OBJECTS + name)
                    ),
                    "delete",
                )
                self.report.purged += 1
            except Exception as exc:
                if error_code(exc) not in ("AccessDenied", "InvalidRequest"):
                    raise
                self.report.purge_refused += 1
            self.state.forget(name)
        if self.report.purge_refused:
            LOG.warning("backup_purge_refused objects=%d (no delete right or Object Lock)", self.report.purge_refused)

    def _write_manifest(self, run_id: int, seq: int, snap_name: str, snap: transfer.Uploaded) -> None:
        local = self.state.temp_file("manifest.jsonl")
        totals = self.state.totals()
        header = manifest.Header(
            run=run_id,
            created=time.time(),
            change_seq=seq,
            snapshot=snap_name,
            snapshot_sha256=snap.sha256,
            snapshot_size=snap.size,
            objects=totals["objects"] + totals["deleted_retained"],
        )
        manifest.write(local, header, (row.manifest_entry() for row in self.state.objects()))
        name = f"{run_id:08d}.age"
        transfer.upload_file(self.client, self.target, MANIFESTS + name, local, self.recipient, self.bandwidth)
        local.unlink()
        self.state.put("manifest_seq", str(seq))
        self.report.manifest = name
