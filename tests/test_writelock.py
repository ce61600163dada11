"""The index write lock excludes other threads and other processes, and nests in one thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from appliance.archive.writelock import WriteLock


def bump(counter: Path, lock: WriteLock, times: int) -> None:
    for _ in range(times):
        with lock, lock:  # re-entrant, as ingest calls into indexing under the same lock
            value = int(counter.read_text())
            counter.write_text(str(value + 1))


def test_lock_serialises_processes_and_threads(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    lock = WriteLock(tmp_path / "index.lock")
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # a forked worker, as the DICOM workers are
            try:
                bump(counter, lock, 300)
            finally:
                os._exit(0)
        children.append(pid)
    threads = [threading.Thread(target=bump, args=(counter, lock, 300)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    assert int(counter.read_text()) == 4 * 300
