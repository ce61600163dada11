"""The index's single-writer lock, across threads and processes.

SQLite serialises writers itself, but a writer that finds the database locked sleeps in its
busy handler (1, 2, 5, 10 ... 100 ms) before trying again: with several DICOM worker
processes that sleeping, not the work, would set the pace.  A blocking flock() wakes the
next writer the moment the previous one commits.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path


class WriteLock:
    """Re-entrant within a thread, exclusive across threads and processes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self._pid = -1
        self._local = threading.RLock()
        self._depth = 0

    def _file(self) -> int:
        # A forked worker must lock through its own open file: flock() locks belong to
        # the open file description, which fork() shares.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def __enter__(self) -> WriteLock:
        self._local.acquire()
        if self._depth == 0:
            try:
                fcntl.flock(self._file(), fcntl.LOCK_EX)
            except BaseException:
                self._local.release()
                raise
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._file(), fcntl.LOCK_UN)
        self._local.release()

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None
