"""glibc malloc tuned for a 1 GB box: memory freed goes back to the system.

Python's own objects live in its arenas; what grows a long-running Lightbox is the C heap:
decoded frames, ZIP and upload buffers, Argon2's 19 MiB.  By default glibc gives each thread
that allocates an arena of its own, and raises its mmap threshold to the largest block freed
so far (up to 32 MiB), after which such blocks come from those arenas and stay there.  Both
are fixed here, before the threads start.  A no-op on a libc without mallopt.
"""

from __future__ import annotations

import ctypes
import functools

_M_MMAP_THRESHOLD = -3  # <malloc.h>
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 256 << 10


def _mallopt(parameter: int, value: int) -> None:
    try:
        ctypes.CDLL(None).mallopt(parameter, value)
    except (OSError, AttributeError):
        pass


@functools.cache
def return_large_buffers_to_the_os() -> None:
    """Blocks of 256 KiB or more are mapped on their own and unmapped when freed: four backup
    upload threads held ~40 MB more than the parts in flight, the web server's eight threads
    ~100 MB more than the frames being decoded."""
    _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def trim() -> None:
    """Give back the free pages inside the malloc heap (malloc_trim(0)): the small blocks a
    study list, a ZIP's listing or a decode freed stay mapped otherwise, each arena keeping its
    largest use so far.  It walks the heap holding each arena's lock: ~2 ms (up to ~40 ms under
    load, measured), so after large work, not after every request."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def limit_malloc_arenas(arenas: int = 2) -> None:
    """At most ``arenas`` malloc arenas: with eight HTTP threads decoding images, RSS grew to
    ~236 MB; with two it stays ~80 MB.  Must run before the threads start."""
    _mallopt(_M_ARENA_MAX, arenas)
