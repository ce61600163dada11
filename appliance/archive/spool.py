"""Where a received dataset is written while it arrives (C-STORE's ``store.spool``, STOW-RS's parts).

The spool folder is on the same file system as storage, so ingest can move a file into place.
A full disk or an oversize dataset becomes a recorded state, not an exception, so the
door answers 0xA700 (an association, a STOW-RS part) and goes on.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
from pathlib import Path


class BoundedSpool:
    """A dataset being received into the spool folder.

    A full disk or an oversize dataset does not raise: the space is given back at once, the
    rest of the dataset is read and dropped, and ``error`` says why, for a 0xA700 answer.
    Every byte kept is also hashed (ingest then need not read it again)."""

    def __init__(self, directory: Path, limit: int) -> None:
        self.path = directory / (secrets.token_hex(16) + ".spool")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.closed = False
        self.limit = limit
        self.digest = hashlib.sha256()
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
                    self.digest.update(data)
                    self.size += len(data)
        return len(data)

    def _fail(self, reason: str) -> None:
        self.error = reason
        os.ftruncate(self.fd, 0)

    def finish(self) -> BoundedSpool:
        """The whole dataset is in: the file is closed, for ingest to take."""
        self.close()
        return self

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
            self.closed = True

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
