"""Where pynetdicom writes a C-STORE dataset while it is received.

pynetdicom (with ``STORE_RECV_CHUNKED_DATASET``) streams each incoming dataset to a file made
by ``NamedTemporaryFile`` in its ``dimse_messages`` module, so memory does not grow with image
size.  We give it ``SpoolFile`` instead: it lives in the archive's spool folder (same file
system as storage), and it turns a full disk or an oversize dataset into a recorded state
instead of an exception inside pynetdicom's reader thread, so the handler can answer 0xA700
and the association goes on.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from pathlib import Path

from pynetdicom import _config, dimse_messages

_active: dict[str, "SpoolFile"] = {}
_lock = threading.Lock()


class SpoolFile:
    """The file-like object pynetdicom writes into (write, flush, close, name, file)."""

    directory: Path
    limit: int

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        discard_abandoned()
        # pynetdicom creates us in the association's DUL thread; while that thread or the
        # association's own thread (which runs the C-STORE handler) lives, the file is in use.
        reader = threading.current_thread()
        self._owners = tuple(t for t in (reader, getattr(reader, "assoc", None)) if isinstance(t, threading.Thread))
        fd, self.name = tempfile.mkstemp(dir=self.directory, suffix=".spool")
        self._fd = fd
        self.size = 0
        self.error: str | None = None  # "disk full" or "too large"
        self.file = self  # pynetdicom calls .file.flush()
        with _lock:
            _active[self.name] = self

    def write(self, data: bytes) -> int:
        if self.error is None:
            if self.size + len(data) > self.limit:
                self._fail("too large")
            else:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(self._fd, view):]
                    self.size += len(data)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    self._fail("disk full")
        return len(data)

    def _fail(self, reason: str) -> None:
        # Give the space back at once; the rest of the dataset is read and dropped.
        self.error = reason
        os.ftruncate(self._fd, 0)

    def flush(self) -> None:
        """Writes go straight to the OS; durability comes later, when ingest fsyncs."""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with _lock:
            _active.pop(self.name, None)


def discard_abandoned() -> int:
    """Close and remove spool files of associations that ended in the middle of a dataset
    (the peer died or aborted): pynetdicom never closes those, so without this they would
    hold a descriptor and their disk space until the next start-up.  Returns how many."""
    with _lock:
        abandoned = [s for s in _active.values() if not any(t.is_alive() for t in s._owners)]
    for spooled in abandoned:
        spooled.close()
        Path(spooled.name).unlink(missing_ok=True)
    return len(abandoned)


def spool_for(path: str | os.PathLike[str]) -> SpoolFile | None:
    with _lock:
        return _active.get(str(path))


def install(directory: Path, limit_bytes: int) -> None:
    """Make pynetdicom stream every received dataset into ``directory``."""
    SpoolFile.directory = directory
    SpoolFile.limit = limit_bytes
    _config.STORE_RECV_CHUNKED_DATASET = True
    dimse_messages.NamedTemporaryFile = SpoolFile  # type: ignore[assignment]
