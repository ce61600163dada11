"""The association slots, one table shared by every process serving the DICOM ports.

Each taken slot says which process holds it and for which peer address, so that the cap
(``max_associations``) and one address's share of it are counted in one place, and a worker
killed while holding slots gives them back: the parent, reaping it, clears its pid's slots
(``reclaim``).  A shared counter instead leaked a dead worker's share until restart.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from typing import Any


class Refused(Exception):
    """No slot for this association; the message is the reason logged."""


def _key(address: str) -> int:
    """The peer address as a non-zero 64-bit number (0 marks a free slot)."""
    return int.from_bytes(hashlib.blake2b(address.encode(), digest_size=8).digest(), "big", signed=True) or 1


class Slots:
    def __init__(self, size: int) -> None:
        # (pid, address key) per slot, in shared memory: made before fork, seen by every worker.
        self._table: Any = multiprocessing.Array("q", 2 * max(size, 1))

    def claim(self, address: str, limit: int, share: int) -> int:
        """A slot for an association from ``address`` (its index), or Refused."""
        key = _key(address)
        with self._table.get_lock():
            table = self._table.get_obj()
            pids, keys = table[0::2], table[1::2]
            taken = [k for p, k in zip(pids, keys, strict=True) if p]
            if len(taken) >= limit or 0 not in pids:
                raise Refused("too_many_associations")
            if taken.count(key) >= share:
                raise Refused("address_share")
            slot = pids.index(0)
            table[2 * slot], table[2 * slot + 1] = os.getpid(), key
            return slot

    def release(self, slot: int) -> None:
        with self._table.get_lock():
            self._table[2 * slot] = self._table[2 * slot + 1] = 0

    def reclaim(self, pid: int) -> int:
        """Free the slots of process ``pid`` (dead); how many it held."""
        freed = 0
        with self._table.get_lock():
            table = self._table.get_obj()
            for slot in range(0, len(table), 2):
                if table[slot] == pid:
                    table[slot] = table[slot + 1] = 0
                    freed += 1
        return freed
