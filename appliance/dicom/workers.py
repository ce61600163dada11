"""DICOM worker processes sharing the listening sockets.

One Python process receives C-STOREs on about one core (the GIL); Orthanc, in C++, uses
several.  Forked workers each accept on the inherited sockets (a new connection goes to the
worker that accepts it first, usually an idle one) and run the same acceptor, each with its
own SQLite connection; writes stay serialised by SQLite's write lock.  They are forked before the main process starts any thread, and die
with it (PR_SET_PDEATHSIG), so a killed server leaves no worker holding the port.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence

from appliance.archive import Archive
from appliance.children import die_with_parent
from appliance.dicom.acceptor import Acceptor
from appliance.dicom.options import DicomOptions
from appliance.dicom.slots import Slots

LOG = logging.getLogger("lightbox.dicom")
SUPERVISE_EVERY = 1.0  # seconds between looks at the workers; also the pause before a restart


class FrontDoor:
    """The acceptor serving the listening sockets."""

    def __init__(
        self,
        archive: Archive,
        options: DicomOptions,
        listeners: Sequence[socket.socket],
        tls_listeners: Sequence[socket.socket] = (),
        slots: Slots | None = None,
    ) -> None:
        self.acceptor = Acceptor(archive, options, listeners, slots, tls_listeners)
        self.acceptor.start()

    def stop(self) -> None:
        self.acceptor.shutdown()  # running transfers finish first


class WorkerPool:
    def __init__(
        self,
        count: int,
        open_archive: Callable[[], Archive],
        options: DicomOptions,
        listeners: Sequence[socket.socket],
        tls_listeners: Sequence[socket.socket] = (),
    ) -> None:
        self.count = count
        self.open_archive = open_archive
        self.options = options
        self.listeners = listeners
        self.tls_listeners = tls_listeners
        self.slots = Slots(options.max_associations)  # shared by the workers; a dead one's are freed
        self.pids: dict[int, int] = {}  # pid -> worker number
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="dicom-workers", daemon=True)

    def start(self) -> None:
        """Fork the workers (call before the main process starts threads)."""
        for number in range(self.count):
            self._spawn(number)

    def supervise(self) -> None:
        self._supervisor.start()

    def _spawn(self, number: int) -> None:
        parent = os.getpid()
        # The objects a worker inherits stay shared with the main process only while neither
        # writes to them, and a full collection by either's garbage collector would: they are
        # moved out of its reach, in both (the main process's are its start-up objects).
        gc.collect()
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                die_with_parent(parent)
                code = self._run_worker(number)
            except BaseException:  # log it, never return into the parent's code
                LOG.exception("dicom_worker_crashed worker=%d", number)
            finally:
                os._exit(code)
        self.pids[pid] = number
        LOG.info("dicom_worker_started worker=%d pid=%d", number, pid)

    def _run_worker(self, number: int) -> int:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
        with self.open_archive() as archive:
            door = FrontDoor(archive, self.options, self.listeners, self.tls_listeners, self.slots)
            stop.wait()
            door.stop()
        return 0

    def _supervise(self) -> None:
        """Restart a worker that died on its own; the archive is safe either way (nothing
        unacknowledged is kept, and the next start-up reconciles).  Only the workers are
        waited for: a wait for any child would also reap the backup's child process or an
        ffmpeg, whose owners would then read a made-up exit status."""
        while not self._stopping.wait(SUPERVISE_EVERY):
            for pid, number in list(self.pids.items()):
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done, status = pid, -1
                if not done or self._stopping.is_set():
                    continue
                freed = self.slots.reclaim(pid)
                del self.pids[pid]
                LOG.error(
                    "dicom_worker_died worker=%d pid=%d status=%d slots_freed=%d; restarting",
                    number,
                    pid,
                    status,
                    freed,
                )
                self._spawn(number)

    def stop(self, grace: float = 15.0) -> None:
        self._stopping.set()
        for pid in list(self.pids):
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for pid in list(self.pids):
            while time.monotonic() < deadline:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                time.sleep(0.05)
            else:
                _signal(pid, signal.SIGKILL)
        self.pids.clear()
        for listener in [*self.listeners, *self.tls_listeners]:  # this process's copies, kept to fork workers again
            listener.close()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
