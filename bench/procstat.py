"""A server's or a command's memory and CPU, read from /proc: one process, or it and its
children (Lightbox forks its DICOM workers), sampled while a bench feeds it or it runs."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_INTERVAL_S = 0.05


def descendants(pid: int) -> list[int]:
    """pid and all its descendants, from a scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def _kib_line(path: str, field: str) -> int:
    """A ``field: N kB`` line of a /proc file, in bytes; 0 once the process is gone."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes(pid: int) -> int:
    return _kib_line(f"/proc/{pid}/status", "VmRSS:")


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the process's peak RSS since its exec (getrusage of a child would also count
    the copy of the parent it started as)."""
    return _kib_line(f"/proc/{pid}/status", "VmHWM:")


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages (a forked worker's copy-on-write code and heap)
    counted once across the processes that share them, unlike VmRSS."""
    return _kib_line(f"/proc/{pid}/smaps_rollup", "Pss:")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of pid and of its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS


class ServerSampler:
    """While active: the peak of the summed VmRSS (and PSS) of a process and its descendants,
    sampled every 50 ms (``interval``) in a thread, the largest sum of their VmHWM seen (each
    process's own high-water mark, which no sampling misses: an upper bound of their peak
    together), and the CPU time they used.  Descendants are rediscovered every 10th sample (a
    /proc scan is the costly part).  With ``role`` (pid -> a name such as "main"), the PSS of
    each role at the summed peak (``at_peak``) and each role's own peak (``role_peaks``)."""

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL_S, role: Callable[[int], str] | None = None) -> None:
        self.pid = pid
        self.interval = interval
        self.role = role
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_hwm = 0
        self.at_peak: dict[str, int] = {}
        self.role_peaks: dict[str, int] = {}
        self.cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ServerSampler:
        pids = descendants(self.pid)
        self._sample(pids)
        self.cpu_s = -sum(cpu_seconds(p) for p in pids)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        pids = descendants(self.pid)
        self._sample(pids)
        self.cpu_s += sum(cpu_seconds(p) for p in pids)

    def _sample(self, pids: list[int]) -> None:
        self.peak_rss = max(self.peak_rss, sum(rss_bytes(p) for p in pids))
        names = {p: self.role(p) for p in pids} if self.role is not None else {}
        pss = {p: pss_bytes(p) for p in pids}
        if self.role is not None:
            roles = by_role(pss, names.__getitem__)
            for name, size in roles.items():
                self.role_peaks[name] = max(self.role_peaks.get(name, 0), size)
            if sum(pss.values()) > self.peak_pss:
                self.at_peak = roles
        self.peak_pss = max(self.peak_pss, sum(pss.values()))
        self.peak_hwm = max(self.peak_hwm, sum(peak_rss_bytes(p) for p in pids))

    def _run(self) -> None:
        pids, n = descendants(self.pid), 0
        while not self._stop.wait(self.interval):
            n += 1
            if n % 10 == 0:
                pids = descendants(self.pid)
            self._sample(pids)


def by_role(sizes: dict[int, int], role: Callable[[int], str]) -> dict[str, int]:
    """Sizes per pid summed per role; a process gone while sampled (size 0) is left out."""
    roles: dict[str, int] = {}
    for pid, size in sizes.items():
        if size:
            name = role(pid)
            roles[name] = roles.get(name, 0) + size
    return roles


@dataclass(frozen=True)
class CommandRun:
    returncode: int
    wall_s: float
    peak_pss: int  # the largest summed PSS sampled
    peak_hwm: int  # the largest summed VmHWM: the kernel's own peak RSS, an upper bound of PSS


def run_sampled(cmd: list[str], interval: float = 0.02, stdin_text: str | None = None, **popen: Any) -> CommandRun:
    """Run ``cmd`` to its end (``popen``: subprocess.Popen's arguments; ``stdin_text`` its
    input), sampling the memory of it and its children every ``interval`` seconds."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin_text is not None else None, **popen)
    with ServerSampler(proc.pid, interval) as sampler:
        if proc.stdin is not None:
            proc.stdin.write((stdin_text or "").encode())
            proc.stdin.close()
        proc.wait()
    return CommandRun(proc.returncode, time.perf_counter() - started, sampler.peak_pss, sampler.peak_hwm)
