"""A folder of small files with a size cap: least recently used files go first.

Names are hashes of what the caller keys them by (never UIDs or names as such), written
atomically; a hit refreshes the file's modification time, which is the LRU order.  A name
begins with the hash of the entry's group (the SOP Instance UID it was made from), so that
``purge`` drops every entry of a deleted instance: they hold patient data.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

GROUP_CHARS = 16  # hex digits of the group's hash that begin a name


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def group_prefix(group: str) -> str:
    return _digest(group)[:GROUP_CHARS] + "-"


class _Ledger:
    """The bytes in one folder, shared by every DiskCache of that folder in this process (the
    web's, the change log followers'), so that each one's writes and purges count for all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total: int | None = None  # counted on first use


_LEDGERS: dict[Path, _Ledger] = {}
_LEDGERS_LOCK = threading.Lock()


def _ledger(folder: Path) -> _Ledger:
    with _LEDGERS_LOCK:
        return _LEDGERS.setdefault(folder.absolute(), _Ledger())


class DiskCache:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._ledger = _ledger(self.folder)

    def path(self, key: str, suffix: str, group: str = "") -> Path:
        return self.folder / f"{group_prefix(group)}{_digest(key)}{suffix}"

    def get_or_make(self, key: str, suffix: str, make: Callable[[], bytes], group: str = "") -> bytes:
        path = self.path(key, suffix, group)
        try:
            data = path.read_bytes()
            os.utime(path)
            return data
        except FileNotFoundError:
            pass
        data = make()
        if len(data) <= self.max_bytes:
            temp = self.scratch(path)
            temp.write_bytes(data)
            self.adopt(temp, path)
        return data

    def lookup(self, key: str, suffix: str, group: str = "") -> Path | None:
        """The cached file for ``key``, marked as just used, or None."""
        path = self.path(key, suffix, group)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def scratch(self, path: Path) -> Path:
        """A name beside ``path`` to make its file under; the cache ignores it until ``adopt``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")

    def adopt(self, temp: Path, path: Path) -> None:
        """Move a file made at ``scratch`` into the cache, then drop the least recently used
        others past the cap (never this one, even when it alone is over the cap)."""
        ledger = self._ledger
        with ledger.lock:
            if ledger.total is None:
                ledger.total = sum(p.stat().st_size for p in self._files())
            os.replace(temp, path)  # a cache: no fsync, a lost file is made again
            ledger.total += path.stat().st_size
            if ledger.total > self.max_bytes:
                self._evict(keep=path)

    def clear_scratch(self) -> None:
        """Remove files left half-made by a process that stopped (call before any making)."""
        if self.folder.is_dir():
            for leftover in self.folder.glob(".*.part"):
                leftover.unlink(missing_ok=True)

    def purge(self, groups: Iterable[str]) -> int:
        """Remove every entry of ``groups`` (one pass over the folder); how many went."""
        prefixes = {group_prefix(g) for g in groups}
        if not prefixes or not self.folder.is_dir():
            return 0
        removed = 0
        with self._ledger.lock:
            for p in self._files():
                if p.name[: GROUP_CHARS + 1] in prefixes:
                    size = p.stat().st_size
                    p.unlink(missing_ok=True)
                    removed += 1
                    if self._ledger.total is not None:
                        self._ledger.total -= size
        return removed

    def drop_ungrouped(self) -> None:
        """Remove entries named before names began with a group (they could never be purged)."""
        if self.folder.is_dir():
            for p in self._files():
                if p.name[GROUP_CHARS : GROUP_CHARS + 1] != "-":
                    p.unlink(missing_ok=True)

    def _evict(self, keep: Path) -> None:
        """Drop the least recently used files until the folder is at 90 % of its cap."""
        entries = sorted(((p.stat().st_mtime, p.stat().st_size, p) for p in self._files()), key=lambda e: e[0])
        total = sum(size for _, size, _ in entries)
        target = self.max_bytes * 9 // 10
        for _, size, p in entries:
            if total <= target:
                break
            if p == keep:
                continue
            p.unlink(missing_ok=True)  # a reader that has it open keeps reading
            total -= size
        self._ledger.total = total

    def _files(self) -> list[Path]:
        return [p for p in self.folder.iterdir() if p.is_file() and not p.name.startswith(".")]
