"""Login backoff: wrong passwords make further attempts wait, per address first.

- From one address: after ``FREE_ATTEMPTS`` wrong passwords, a wait that doubles with each
  further failure (up to ``MAX_WAIT``).
- For one user name, from every address together: the same, but only after
  ``ACCOUNT_FREE_ATTEMPTS`` -- a spray from many addresses -- and never for an address this user
  has logged in from before, so that a stranger's guesses cannot keep the vet out of her own
  archive.  An admin can lift it at once (``unlock``).

Refused, not slowed down: a sleeping request would hold one of the server's few threads.
Kept in memory: a restart forgives, which is acceptable for the time it costs an attacker.
"""

from __future__ import annotations

import threading
import time

FREE_ATTEMPTS = 3  # wrong passwords from one address allowed before the first wait
ACCOUNT_FREE_ATTEMPTS = 30  # wrong passwords for one user name, from anywhere
FIRST_WAIT = 5.0  # seconds; doubles with each further failure (a person who mistyped thrice waits 5 s)
MAX_WAIT = 300.0
FORGET_AFTER = 3600.0  # a key quiet this long starts afresh
MAX_KEYS = 10_000  # bound memory under a spray of addresses or names
MAX_KNOWN_ADDRESSES = 8  # per user: the addresses of its last successful logins


def _address(keys: tuple[str, ...]) -> str:
    """The address among ``keys`` (see ``LoginBackoff.keys``), "" when there is none."""
    return next((k[3:] for k in keys if k.startswith("ip:")), "")


class LoginBackoff:
    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (failures, time of the last)
        self._known: dict[str, list[str]] = {}  # user key -> addresses it logged in from
        self._lock = threading.Lock()

    @staticmethod
    def keys(address: str, user_name: str) -> tuple[str, str]:
        return ("ip:" + address, "user:" + user_name.strip().casefold())

    def wait_left(self, keys: tuple[str, ...], now: float | None = None) -> float:
        """Seconds until any attempt for ``keys`` is allowed again (0: allowed now)."""
        now = time.monotonic() if now is None else now
        address = _address(keys)
        with self._lock:
            left = 0.0
            for key in keys:
                free = FREE_ATTEMPTS
                if key.startswith("user:"):
                    if address in self._known.get(key, ()):
                        continue
                    free = ACCOUNT_FREE_ATTEMPTS
                failures, last = self._failures.get(key, (0, 0.0))
                if failures >= free:
                    wait = min(FIRST_WAIT * 2 ** (failures - free), MAX_WAIT)
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
        """A right password: its keys start afresh, and its address is known for its user."""
        address = _address(keys)
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
                if key.startswith("user:") and address:
                    if len(self._known) >= MAX_KEYS:
                        self._known.clear()
                    known = [a for a in self._known.get(key, []) if a != address]
                    self._known[key] = [*known, address][-MAX_KNOWN_ADDRESSES:]

    def account_wait(self, user_name: str) -> float:
        """The account-wide wait on ``user_name``'s logins from an address it never used."""
        return self.wait_left(self.keys("", user_name)[1:])

    def unlock(self, user_name: str) -> None:
        """An admin lifts the account-wide wait of ``user_name``."""
        with self._lock:
            self._failures.pop(self.keys("", user_name)[1], None)
