"""How a background loop (stability, forwarding, the audit export) says that one of its rounds
failed: one line while the disk is full -- it says so each round until there is room again --
and a traceback for anything else."""

from __future__ import annotations

import logging

from appliance.archive import disk_full


def round_failed(log: logging.Logger, what: str, exc: Exception) -> None:
    if disk_full(exc):
        log.warning("%s_waiting reason=disk_full", what)
    else:
        log.error("%s_failed", what, exc_info=exc)
