"""Wires the parts into one process: archive, DICOM server, HTTP server, background work."""

from __future__ import annotations

import dataclasses
import faulthandler
import functools
import logging
import signal
import threading
from typing import Any

import waitress
from waitress.server import BaseWSGIServer, MultiSocketServer

from appliance import certificates, health, listeners, systemd
from appliance.archive import Archive, ArchiveOptions
from appliance.audittrail.exporter import AuditExporter, ExportOptions
from appliance.audittrail.syslog import SyslogTarget
from appliance.backup.schedule import Trigger, backup_loop
from appliance.backup.status import verified_in_backup
from appliance.certificates import Identity
from appliance.config import ConfigError, Settings
from appliance.dicom.options import DicomOptions
from appliance.dicom.sender import forward
from appliance.dicom.tls import client_context
from appliance.dicom.workers import FrontDoor, WorkerPool
from appliance.discovery.lan import Discovery, discovery_options
from appliance.hl7.listener import Listener, allow_list
from appliance.imaging import ImagingOptions
from appliance.malloc import limit_malloc_arenas, return_large_buffers_to_the_os
from appliance.rounds import round_failed
from appliance.web import connections, tls
from appliance.web.app import make_app, with_security_headers
from appliance.web.bodylimits import BodyLimits, routed_parser, with_body_limits
from appliance.web.cachepurge import purge_removed
from appliance.web.connections import CONNECTION_LIMIT
from appliance.web.dicomweb.metadata import InstanceMetadata
from appliance.web.giveback import with_memory_given_back
from appliance.web.https import HttpsDoor, with_https

LOG = logging.getLogger("lightbox.service")

STABILITY_INTERVAL = 5.0  # seconds between looks for studies that became stable
FORWARD_INTERVAL = 2.0  # seconds between looks at the forwarding queue
CACHE_INTERVAL = 2.0  # seconds between looks for arrivals to make metadata of, removals to purge
READY_WITHIN = 60.0  # seconds the ports have, once started, to answer the first health round
# A response (a study ZIP) may run this far ahead of a client before its thread waits: waitress's
# default, 16 MiB, cost ~20 MB more per download in progress (three at once: ~60 MB).
OUTBUF_HIGH_WATERMARK = 4 << 20
# SQLite keeps a page cache per connection, and each thread has its own connection.  The main
# process keeps ~15 threads for good (eight of them web), so 2 MB each (SQLite's default) there:
# 8 clients browsing 50,000 studies took it to ~200 MB PSS with 8 MB each, ~135 MB with 2 MB,
# the pages no slower.  A DICOM worker's connections last one association: 8 MB.
MAIN_PAGE_CACHE_KIB = 2000
BACKUP_STOP_WITHIN = 20.0  # seconds a backup run has to record that it was stopped
# waitress reads 8 KiB per turn of its loop by default: a 250 MB STOW-RS body took 2.5 s to buffer,
# 0.9 s at 256 KiB a turn (one loop thread, so one such buffer at a time).
RECV_BYTES = 256 << 10


def archive_options(settings: Settings) -> ArchiveOptions:
    return ArchiveOptions(
        duplicate_policy=settings.duplicate_policy,
        min_free_mb=settings.min_free_mb,
        stable_age=float(settings.stable_age),
        find_fold_names=settings.find_fold_names,
        find_max_results=settings.find_max_results,
        worklist_keep_days=settings.worklist_keep_days,
        worklist_keep_done=settings.worklist_keep_done,
        session_idle_s=float(settings.session_idle_timeout),
        session_max_s=float(settings.session_max_age),
        device_policy=settings.device_policy,
        max_devices=settings.max_learned_devices,
        forward_retry_initial=float(settings.forward_retry_initial),
    )


def dicom_options(settings: Settings, identity: Identity | None = None) -> DicomOptions:
    return DicomOptions(
        aet=settings.aet,
        max_associations=settings.max_associations,
        network_timeout=float(settings.network_timeout),
        idle_timeout=float(settings.idle_timeout),
        associate_timeout=float(settings.associate_timeout),
        max_associations_per_address=settings.max_associations_per_address,
        max_pending=settings.max_pending_connections,
        max_pdu=settings.max_pdu,
        max_instance_bytes=settings.max_instance_mb * 1024 * 1024,
        query_retrieve_from=settings.query_retrieve_from,
        called_aet_check=settings.called_aet_check,
        health_aet=health.probe_aet(),
        tls_identity=identity,
        tls_peers=settings.dicom_tls_peers,
        commitment_requires_backup=settings.commitment_requires_backup,
        backup_verified=functools.partial(verified_in_backup, settings.data_dir),
    )


def export_options(settings: Settings) -> ExportOptions:
    target = None
    if settings.audit_syslog:
        try:
            target = SyslogTarget.parse(
                settings.audit_syslog, settings.audit_syslog_ca, settings.audit_syslog_cert, settings.audit_syslog_key
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return ExportOptions(target, float(settings.audit_retention_days), settings.aet)


def open_archive(settings: Settings, page_cache_kib: int = ArchiveOptions.page_cache_kib) -> Archive:
    return Archive(settings.data_dir, dataclasses.replace(archive_options(settings), page_cache_kib=page_cache_kib))


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = threading.Event()
        self.archive: Archive | None = None
        self.dicom: FrontDoor | None = None
        self.workers: WorkerPool | None = None
        self.http: BaseWSGIServer | MultiSocketServer | None = None
        self._threads: list[threading.Thread] = []
        self._backup: threading.Thread | None = None
        self.discovery: Discovery | None = None
        self.hl7: Listener | None = None
        self.identity: Identity | None = None  # the box's TLS certificate, once started
        self.backup_trigger = Trigger()  # the web page's "Back up now" and "Verify a sample now"

    def start(self) -> None:
        # From the first moment, not only once serving: a SIGTERM while starting stops cleanly too.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        limit_malloc_arenas()
        return_large_buffers_to_the_os()
        faulthandler.enable()  # a watchdog's SIGABRT, or a crash, leaves every thread's traceback in the log
        systemd.notify("STATUS=starting: checking the archive")
        self.archive = open_archive(self.settings, MAIN_PAGE_CACHE_KIB)
        report = self.archive.reconcile()
        LOG.info(
            "started data=%s reindexed_orphans=%d unindexable=%d missing_files=%d spool_cleared=%d",
            self.settings.data_dir,
            len(report.indexed),
            len(report.unindexable),
            len(report.missing_files),
            report.spool_cleared,
        )
        passed = systemd.passed_sockets()
        s = self.settings
        self.identity = certificates.identity(s)
        dicom_sockets = listeners.take(passed, listeners.DICOM, s.host, s.dicom_port)
        tls_sockets = listeners.take(passed, listeners.DICOM_TLS, s.host, s.dicom_tls_port)
        options = dicom_options(s, self.identity)
        if s.dicom_workers > 0:
            self.archive.close()  # an SQLite connection must not cross fork(); reopen after
            self.workers = WorkerPool(s.dicom_workers, lambda: open_archive(s), options, dicom_sockets, tls_sockets)
            self.workers.start()
            self.archive = open_archive(s, MAIN_PAGE_CACHE_KIB)
            self.workers.supervise()
        else:
            self.dicom = FrontDoor(self.archive, options, dicom_sockets, tls_sockets)
        http_sockets = listeners.take(passed, listeners.HTTP, s.host, s.http_port)
        https_sockets = listeners.take(passed, listeners.HTTPS, s.host, s.https_port)
        if not https_sockets:  # else the web's start-up line says it (web/https.py)
            LOG.info(
                "tls_certificate path=%s certificate_sha256=%s", self.identity.certificate, self.identity.fingerprint
            )
        if not dicom_sockets or not http_sockets:
            raise ConfigError("dicom_port and http_port cannot be 0: Lightbox always serves both")
        targets = health.Targets(
            tuple(listeners.reachable(sock) for sock in dicom_sockets),
            listeners.reachable(http_sockets[0]),
            s.aet,
            options.health_aet,
            tuple(listeners.reachable(sock) for sock in tls_sockets),
            client_context(self.identity, self.identity.certificate.read_text(encoding="ascii")),
        )
        # What DNS-SD and the pages show.
        served = listeners.in_force(s, dicom_sockets, http_sockets, https_sockets, tls_sockets)
        archive = self.archive
        door = HttpsDoor(served.https_port, self.identity)
        limits = BodyLimits(stow=s.dicomweb_max_stow_mb << 20, attach=s.attach_max_mb << 20)
        app = with_memory_given_back(with_security_headers(with_https(with_body_limits(
            make_app(archive, ImagingOptions.from_settings(served), served, self.backup_trigger, door), limits
        ), archive, door)), archive)  # fmt: skip
        self.http = waitress.create_server(
            app, sockets=http_sockets + https_sockets, threads=8, max_request_body_size=limits.largest,
            connection_limit=CONNECTION_LIMIT, outbuf_high_watermark=OUTBUF_HIGH_WATERMARK, recv_bytes=RECV_BYTES,
        )  # fmt: skip
        parser = routed_parser(limits, archive.storage.spool)
        connections.guard(self.http, parser)
        tls.serve(self.http, https_sockets, tls.server_context(self.identity), parser)
        self._spawn("http", self.http.run)
        self._spawn("stability", functools.partial(self._stability_loop, archive))
        self._backup = self._spawn(
            "backup", functools.partial(backup_loop, archive, served, self.stopping, self.backup_trigger)
        )
        self._spawn("forwarding", functools.partial(self._forward_loop, archive))
        self._spawn("caches", functools.partial(self._cache_loop, archive))
        self._spawn("audit", AuditExporter(archive, export_options(s), self.stopping).run)
        hl7_sockets = listeners.take({}, listeners.HL7, s.host, s.hl7_port)
        if hl7_sockets:
            self.hl7 = Listener(archive, hl7_sockets[0], allow_list(s.hl7_allowed_addresses))
            self._spawn("hl7", self.hl7.run)
        if served.discovery:
            self.discovery = Discovery(archive, discovery_options(served))
            self.discovery.start()
        if systemd.under_systemd():
            watchdog = health.Watchdog(targets, served.data_dir, self.stopping)
            watchdog.ready(READY_WITHIN)
            self._spawn("health", watchdog.run)

    def _spawn(self, name: str, target: Any) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _stability_loop(self, archive: Archive) -> None:
        while not self.stopping.wait(STABILITY_INTERVAL):
            try:
                for uid in archive.mark_stable():
                    LOG.info("study_stable study=%s", uid)
            except Exception as exc:  # keep looking; a locked or full database is transient
                round_failed(LOG, "stability_check", exc)

    def _cache_loop(self, archive: Archive) -> None:
        # One thread, in this order: an entry made ahead for an instance deleted meanwhile is
        # purged in the same round.
        metadata = InstanceMetadata(archive.data_dir)
        while not self.stopping.wait(CACHE_INTERVAL):
            try:
                if made := metadata.make_ahead(archive):
                    LOG.info("metadata_made_ahead instances=%d", made)
                purge_removed(archive)
            except Exception as exc:  # try again next round: the cursors move only after the work
                round_failed(LOG, "cache_upkeep", exc)

    def _forward_loop(self, archive: Archive) -> None:
        while not self.stopping.wait(FORWARD_INTERVAL):
            try:
                send = functools.partial(
                    forward,
                    storage=archive.storage,
                    calling_aet=archive.site.ae_title(self.settings.aet),  # an admin may change it
                    max_pdu=self.settings.max_pdu,
                    timeout=float(self.settings.network_timeout),
                    identity=self.identity,
                )
                archive.forwarding.enqueue_stable()
                archive.forwarding.run_due(send, self.stopping.is_set)
            except Exception as exc:  # keep going; the queue is in the index and survives
                round_failed(LOG, "forwarding", exc)

    def wait(self) -> None:
        """Block until SIGINT or SIGTERM (handled since start()), then stop cleanly."""
        self.stopping.wait()
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.backup_trigger.wake()  # a running backup or verification stops at its next call to the bucket
        systemd.notify("STOPPING=1", "STATUS=stopping: letting transfers finish")
        if self.workers is not None:
            self.workers.stop()
        if self.dicom is not None:
            self.dicom.stop()
        if self.http is not None:
            self.http.close()
        if self.hl7 is not None:
            self.hl7.stop()
        if self.discovery is not None:
            self.discovery.stop()
        if self._backup is not None:  # so that a run cut short is recorded as failed, not left open
            self._backup.join(BACKUP_STOP_WITHIN)
        if self.archive is not None:
            self.archive.close()
        LOG.info("stopped")
