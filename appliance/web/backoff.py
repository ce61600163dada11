"""Login backoff: after a few wrong passwords from one address, or for one user name, further
attempts are refused for a while, doubling each time.

Refused, not slowed down: a sleeping request would hold one of the server's few threads.
Kept in memory: a restart forgives, which is acceptable for the time it costs an attacker.
"""

from __future__ import annotations

import threading
import time

FREE_ATTEMPTS = 3  # wrong passwords allowed before the first wait
FIRST_WAIT = 1.0  # seconds; doubles with each further failure
MAX_WAIT = 300.0
FORGET_AFTER = 3600.0  # a key quiet this long starts afresh
MAX_KEYS = 10_000  # bound memory under a spray of addresses or names


class LoginBackoff:
    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (failures, time of the last)
        self._lock = threading.Lock()

    @staticmethod
    def keys(address: str, user_name: str) -> tuple[str, str]:
        return ("ip:" + address, "user:" + user_name.strip().casefold())

    def wait_left(self, keys: tuple[str, ...], now: float | None = None) -> float:
        """Seconds until any attempt for ``keys`` is allowed again (0: allowed now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            left = 0.0
            for key in keys:
                failures, last = self._failures.get(key, (0, 0.0))
                if failures >= FREE_ATTEMPTS:
                    wait = min(FIRST_WAIT * 2 ** (failures - FREE_ATTEMPTS), MAX_WAIT)
                    left = max(left, last + wait - now)
            return left

    def failed(self, keys: tuple[str, ...], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) >= MAX_KEYS:
                self._failures = {k: v for k, v in self._failures.items() if now - v[1] < FORGET_AFTER}
                if len(self._failures) >= MAX_KEYS:  # still full: forget the oldest half
                    kept = sorted(self._failures.items(), key=lambda kv: kv[1][1])[MAX_KEYS // 2 :]
                    self._failures = dict(kept)
            for key in keys:
                failures, last = self._failures.get(key, (0, now))
                if now - last > FORGET_AFTER:
                    failures = 0
                self._failures[key] = (failures + 1, now)

    def succeeded(self, keys: tuple[str, ...]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
