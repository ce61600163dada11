"""Where a C-STORE dataset is written while it is received, by either DICOM door.

pynetdicom (with ``STORE_RECV_CHUNKED_DATASET``) streams each incoming dataset to a file made
by ``NamedTemporaryFile`` in its ``dimse_messages`` module, so memory does not grow with image
size.  We give it ``SpoolFile`` instead: it lives in the archive's spool folder (same file
system as storage), and it turns a full disk or an oversize dataset into a recorded state
instead of an exception inside pynetdicom's reader thread, so the handler can answer 0xA700
and the association goes on.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import threading
from pathlib import Path

from pynetdicom import _config, dimse_messages

from appliance.archive import Origin
from appliance.dicom.status import OUT_OF_RESOURCES

LOG = logging.getLogger("lightbox.dicom")

_active: dict[str, "SpoolFile"] = {}
_lock = threading.Lock()


class BoundedSpool:
    """A dataset being received into the spool folder, by either DICOM door.

    A full disk or an oversize dataset does not raise: the space is given back at once, the
    rest of the dataset is read and dropped, and ``error`` says why, for a 0xA700 answer.
    With ``hashed``, every byte kept is also hashed (ingest then need not read it again)."""

    def __init__(self, directory: Path, limit: int, hashed: bool = False) -> None:
        self.path = directory / (secrets.token_hex(16) + ".spool")
        self.fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.limit = limit
        self.digest = hashlib.sha256() if hashed else None
        self.size = 0
        self.error: str | None = None  # "disk full" or "instance too large"

    def write(self, data: bytes | memoryview) -> int:
        if self.error is None:
            if self.size + len(data) > self.limit:
                self._fail("instance too large")
            else:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(self.fd, view) :]
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    self._fail("disk full")
                else:
                    if self.digest is not None:
                        self.digest.update(data)
                    self.size += len(data)
        return len(data)

    def _fail(self, reason: str) -> None:
        self.error = reason
        os.ftruncate(self.fd, 0)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def refusal(origin: Origin, error: str) -> tuple[int, str]:
    """The answer (status, error comment) to a dataset the spool could not take, logged."""
    LOG.warning(
        "ingest outcome=out_of_resources via=dicom calling_ae=%r address=%s reason=%r",
        origin.calling_ae,
        origin.address,
        error,
    )
    return OUT_OF_RESOURCES, f"refused: {error}"


class SpoolFile(BoundedSpool):
    """The file-like object pynetdicom writes into (write, flush, close, name, file)."""

    directory: Path
    max_bytes: int

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        discard_abandoned()
        super().__init__(self.directory, self.max_bytes)
        # pynetdicom creates us in the association's DUL thread; while that thread or the
        # association's own thread (which runs the C-STORE handler) lives, the file is in use.
        reader = threading.current_thread()
        self._owners = tuple(t for t in (reader, getattr(reader, "assoc", None)) if isinstance(t, threading.Thread))
        self.name = str(self.path)
        self.file = self  # pynetdicom calls .file.flush()
        with _lock:
            _active[self.name] = self

    def flush(self) -> None:
        """Writes go straight to the OS; durability comes later, when ingest fsyncs."""

    def close(self) -> None:
        super().close()
        with _lock:
            _active.pop(self.name, None)


def discard_abandoned() -> int:
    """Close and remove spool files of associations that ended in the middle of a dataset
    (the peer died or aborted): pynetdicom never closes those, so without this they would
    hold a descriptor and their disk space until the next start-up.  Returns how many."""
    with _lock:
        abandoned = [s for s in _active.values() if not any(t.is_alive() for t in s._owners)]
    for spooled in abandoned:
        spooled.discard()
    return len(abandoned)


def spool_for(path: str | os.PathLike[str]) -> SpoolFile | None:
    with _lock:
        return _active.get(str(path))


def install(directory: Path, limit_bytes: int) -> None:
    """Make pynetdicom stream every received dataset into ``directory``."""
    SpoolFile.directory = directory
    SpoolFile.max_bytes = limit_bytes
    _config.STORE_RECV_CHUNKED_DATASET = True
    dimse_messages.NamedTemporaryFile = SpoolFile  # type: ignore[assignment]
