"""appliance.malloc changes what glibc does, seen from a fresh process: freed large blocks go
back to the system, eight threads share two arenas, and a trim gives back the holes freed
inside the heap.  Each probe also runs untuned, to show the default that the tuning is there
to change."""

from __future__ import annotations

import subprocess
import sys

import pytest

PRELUDE = """
import ctypes, sys, threading
from appliance import malloc
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
tuned = sys.argv[1] == "tuned"
"""

# A large buffer freed (a decoded radiograph) raises glibc's mmap threshold to its size; the
# 1 MiB blocks that follow (upload parts, frames) then come from the heap, and with anything
# allocated after them they stay there once freed.
GIVE_BACK = """
def rss():
    return next(int(l.split()[1]) << 10 for l in open("/proc/self/status") if l.startswith("VmRSS:"))
if tuned:
    malloc.return_large_buffers_to_the_os()
block = libc.malloc(8 << 20); libc.memset(block, 1, 8 << 20); libc.free(block)
blocks, kept = [], []
for _ in range(64):
    blocks.append(libc.malloc(1 << 20)); libc.memset(blocks[-1], 1, 1 << 20)
    kept.append(libc.malloc(100 << 10))
before = rss()
for block in blocks:
    libc.free(block)
print((before - rss()) >> 20)
"""

# Blocks under the mmap threshold (a study list's rows, a ZIP's listing) come from the heap;
# freed with a block still in use after each, they leave holes that glibc keeps mapped.
TRIM = """
def rss():
    return next(int(l.split()[1]) << 10 for l in open("/proc/self/status") if l.startswith("VmRSS:"))
malloc.return_large_buffers_to_the_os()
blocks, kept = [], []
for _ in range(640):
    blocks.append(libc.malloc(100 << 10)); libc.memset(blocks[-1], 1, 100 << 10)
    kept.append(libc.malloc(64))
for block in blocks:
    libc.free(block)
before = rss()
if tuned:
    malloc.trim()
print((before - rss()) >> 20)
"""

# Eight threads allocating at once, as the web server's do: how many arenas glibc keeps.
ARENAS = """
if tuned:
    malloc.limit_malloc_arenas()
together = threading.Barrier(8)
def allocate():
    together.wait()
    libc.malloc(1000)
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
libc.malloc_stats()
"""


def probe(script: str, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE + script, mode], capture_output=True, text=True, check=True)


@pytest.mark.parametrize("mode", ["tuned", "default"])
def test_freed_large_blocks_go_back_to_the_system(mode: str) -> None:
    given_back_mb = int(probe(GIVE_BACK, mode).stdout)
    if mode == "tuned":
        assert given_back_mb >= 60
    else:
        assert given_back_mb < 8  # glibc's default keeps them: what the tuning is for


@pytest.mark.parametrize("mode", ["tuned", "default"])
def test_threads_share_at_most_two_arenas(mode: str) -> None:
    arenas = probe(ARENAS, mode).stderr.count("Arena ")
    if mode == "tuned":
        assert arenas == 2
    else:
        assert arenas > 2


@pytest.mark.parametrize("mode", ["tuned", "default"])
def test_trim_gives_back_the_holes_in_the_heap(mode: str) -> None:
    given_back_mb = int(probe(TRIM, mode).stdout)
    if mode == "tuned":
        assert given_back_mb >= 55
    else:
        assert given_back_mb < 8  # without malloc_trim, glibc keeps them
