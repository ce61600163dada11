"""What systemd gives a service and asks of it (sd_notify(3), sd_listen_fds(3), sd-daemon(3)):
the notification socket (READY=1, STATUS=, WATCHDOG=1, STOPPING=1), the watchdog period, the
listening sockets of socket activation, and log lines whose priority the journal reads.
Outside systemd there is none of them: notify does nothing, the period is None, no socket is
passed, log lines are plain."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import MutableMapping

LISTEN_FDS_START = 3  # the first descriptor systemd passes
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def notify(*lines: str) -> None:
    """Send ``lines`` (``READY=1``, ``STATUS=...``) to systemd in one datagram."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto("\n".join(lines).encode(), address)


def under_systemd() -> bool:
    """Does a service manager listen to ``notify``?"""
    return bool(os.environ.get("NOTIFY_SOCKET"))


def watchdog_period() -> float | None:
    """Seconds within which systemd expects WATCHDOG=1 (``WatchdogSec=``), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6


def passed_sockets(environ: MutableMapping[str, str] | None = None) -> dict[str, list[socket.socket]]:
    """The listening sockets systemd passed to this process, by name (``FileDescriptorName=``).

    The variables are removed, so that a child (ffmpeg) never takes the sockets for its own,
    and each descriptor is made close-on-exec for the same reason."""
    environ = os.environ if environ is None else environ
    if environ.get("LISTEN_PID") != str(os.getpid()):
        return {}
    count = int(environ.get("LISTEN_FDS", "0"))
    names = environ.get("LISTEN_FDNAMES", "").split(":")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    passed: dict[str, list[socket.socket]] = {}
    for n in range(count):
        fd = LISTEN_FDS_START + n
        os.set_inheritable(fd, False)
        passed.setdefault(names[n] if n < len(names) else "unknown", []).append(socket.socket(fileno=fd))
    return passed


def logs_to_journal() -> bool:
    """Is stderr the journal's stream (JOURNAL_STREAM names its device and inode)?"""
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return os.environ.get("JOURNAL_STREAM") == f"{stat.st_dev}:{stat.st_ino}"


class JournalFormatter(logging.Formatter):
    """Each line begins ``<N>``, its syslog priority, which journald takes as the priority
    (``journalctl -u lightbox -p warning`` then shows warnings and errors only)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"
