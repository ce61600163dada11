"""The service's child processes (forked DICOM workers, the backup's child) die with it: a
killed server leaves none behind holding a port, the backup lock or memory."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when ``parent`` dies.  Linux sends it when the *thread* that made
    this process ends: the parent keeps that thread alive while the child runs."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
