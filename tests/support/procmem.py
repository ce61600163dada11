"""What another process holds in memory, read from /proc/PID/mem (the tests run as its parent
or as root, which ptrace's access check allows).

Python modules are read, not mapped, so /proc/PID/maps does not show which are imported; a
module's path does sit in the process's memory once it is (its ``__file__``, its code
objects' ``co_filename``)."""

from __future__ import annotations

from pathlib import Path

CHUNK = 1 << 20


def holds(pid: int, needle: bytes) -> bool:
    """Does any readable private mapping of ``pid`` (heap, anonymous memory, stacks) hold ``needle``?"""
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            fields = line.split()
            span, perms = fields[0], fields[1]
            name = fields[5] if len(fields) > 5 else ""
            if not perms.startswith("r") or perms[3] != "p" or name in ("[vvar]", "[vsyscall]", "[vdso]"):
                continue
            if name and not name.startswith("["):
                continue  # a mapped file (a library's code, its data): what was read from disk, not made here
            start, end = (int(part, 16) for part in span.split("-"))
            if _region_holds(mem, start, end, needle):
                return True
    return False


def _region_holds(mem, start: int, end: int, needle: bytes) -> bool:
    tail = b""
    for at in range(start, end, CHUNK):
        try:
            mem.seek(at)
            block = mem.read(min(CHUNK, end - at))
        except OSError:  # unmapped since /proc/PID/maps was read
            return False
        if needle in tail + block:
            return True
        tail = block[-len(needle) :]
    return False
