"""Wires the parts into one process: archive, DICOM server, HTTP server, background work."""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import threading
from typing import Any

import waitress
from waitress.server import BaseWSGIServer, MultiSocketServer

from appliance.archive import Archive, ArchiveOptions
from appliance.backup.schedule import Trigger, backup_loop
from appliance.config import Settings
from appliance.dicom.acceptor import listen
from appliance.dicom.options import DicomOptions
from appliance.dicom.sender import forward
from appliance.dicom.workers import FrontDoor, WorkerPool
from appliance.discovery.lan import Discovery, discovery_options
from appliance.imaging import ImagingOptions
from appliance.malloc import limit_malloc_arenas, return_large_buffers_to_the_os
from appliance.web.app import make_app, with_security_headers

LOG = logging.getLogger("lightbox.service")

STABILITY_INTERVAL = 5.0  # seconds between looks for studies that became stable
FORWARD_INTERVAL = 2.0  # seconds between looks at the forwarding queue
# A response (a study ZIP) may run this far ahead of a client before its thread waits: waitress's
# default, 16 MiB, cost ~20 MB more per download in progress (three at once: ~60 MB).
OUTBUF_HIGH_WATERMARK = 4 << 20


def archive_options(settings: Settings) -> ArchiveOptions:
    return ArchiveOptions(
        duplicate_policy=settings.duplicate_policy,
        min_free_mb=settings.min_free_mb,
        stable_age=float(settings.stable_age),
        find_fold_names=settings.find_fold_names,
        find_max_results=settings.find_max_results,
        session_idle_s=float(settings.session_idle_timeout),
        session_max_s=float(settings.session_max_age),
        device_policy=settings.device_policy,
        forward_retry_initial=float(settings.forward_retry_initial),
    )


def open_archive(settings: Settings) -> Archive:
    return Archive(settings.data_dir, archive_options(settings))


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("waitress").setLevel(logging.WARNING)


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = threading.Event()
        self.archive: Archive | None = None
        self.dicom: FrontDoor | None = None
        self.workers: WorkerPool | None = None
        self.http: BaseWSGIServer | MultiSocketServer | None = None
        self._threads: list[threading.Thread] = []
        self.discovery: Discovery | None = None
        self.backup_trigger = Trigger()  # the web page's "Back up now" and "Verify a sample now"

    def start(self) -> None:
        s = self.settings
        limit_malloc_arenas()
        return_large_buffers_to_the_os()
        self.archive = open_archive(s)
        report = self.archive.reconcile()
        LOG.info(
            "started data=%s reindexed_orphans=%d unindexable=%d missing_files=%d spool_cleared=%d",
            s.data_dir,
            len(report.indexed),
            len(report.unindexable),
            len(report.missing_files),
            report.spool_cleared,
        )
        options = DicomOptions(
            aet=s.aet,
            host=s.host,
            port=s.dicom_port,
            max_associations=s.max_associations,
            network_timeout=float(s.network_timeout),
            max_pdu=s.max_pdu,
            max_instance_bytes=s.max_instance_mb * 1024 * 1024,
            query_retrieve_from=s.query_retrieve_from,
        )
        listener = listen(options)
        if s.dicom_workers > 0:
            self.archive.close()  # an SQLite connection must not cross fork(); reopen after
            self.workers = WorkerPool(s.dicom_workers, lambda: open_archive(s), options, listener)
            self.workers.start()
            self.archive = open_archive(s)
            self.workers.supervise()
        else:
            self.dicom = FrontDoor(self.archive, options, listener)
        archive = self.archive
        app = with_security_headers(make_app(archive, ImagingOptions.from_settings(s), s, self.backup_trigger))
        self.http = waitress.create_server(
            app, host=s.host, port=s.http_port, threads=8, outbuf_high_watermark=OUTBUF_HIGH_WATERMARK
        )
        LOG.info("http_listening host=%s port=%d", s.host, s.http_port)
        self._spawn("http", self.http.run)
        self._spawn("stability", functools.partial(self._stability_loop, archive))
        self._spawn("backup", functools.partial(backup_loop, archive, s, self.stopping, self.backup_trigger))
        self._spawn("forwarding", functools.partial(self._forward_loop, archive))
        if s.discovery:
            self.discovery = Discovery(archive, discovery_options(s))
            self.discovery.start()
        _sd_notify("READY=1")

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _stability_loop(self, archive: Archive) -> None:
        while not self.stopping.wait(STABILITY_INTERVAL):
            try:
                for uid in archive.mark_stable():
                    LOG.info("study_stable study=%s", uid)
            except Exception:  # keep looking; a locked or full database is transient
                LOG.exception("stability_check_failed")

    def _forward_loop(self, archive: Archive) -> None:
        while not self.stopping.wait(FORWARD_INTERVAL):
            try:
                send = functools.partial(
                    forward,
                    storage=archive.storage,
                    calling_aet=archive.site.ae_title(self.settings.aet),  # an admin may change it
                    max_pdu=self.settings.max_pdu,
                    timeout=float(self.settings.network_timeout),
                )
                archive.forwarding.enqueue_stable()
                archive.forwarding.run_due(send, self.stopping.is_set)
            except Exception:  # keep going; the queue is in the index and survives
                LOG.exception("forwarding_failed")

    def wait(self) -> None:
        """Block until SIGINT or SIGTERM, then stop cleanly."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        self.stopping.wait()
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.backup_trigger.wake()
        _sd_notify("STOPPING=1")
        if self.workers is not None:
            self.workers.stop()
        if self.dicom is not None:
            self.dicom.stop()
        if self.http is not None:
            self.http.close()
        if self.discovery is not None:
            self.discovery.stop()
        if self.archive is not None:
            self.archive.close()
        LOG.info("stopped")


def _sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)
