"""Polling for a condition that a background job makes true (forwarding, retries)."""

from __future__ import annotations

import time
from collections.abc import Callable

WAIT = 45.0  # seconds: stable_age 1 s, the stability check every 5 s, retries after 1, 2, 4 ... s


def wait_for(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what} within {WAIT:.0f} s")
