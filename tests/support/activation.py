"""systemd's side of a service, played by a test: listening sockets passed as by socket
activation (LISTEN_FDS, LISTEN_FDNAMES) and a notification socket that collects what the
service says (READY=1, STATUS=, WATCHDOG=1, STOPPING=1)."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

# Moves each passed descriptor to 3, 4, ... and execs the service with its own PID as LISTEN_PID.
_EXEC = """
import os, sys
for n, fd in enumerate(map(int, os.environ.pop("LB_FDS").split())):
    os.dup2(fd, 3 + n)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[1], sys.argv[1:])
"""


def activated(
    command: Sequence[str], sockets: Sequence[tuple[str, socket.socket]], env: dict[str, str], log: Path
) -> subprocess.Popen:
    """Start ``command`` with ``sockets`` (name, listening socket) passed as systemd passes them."""
    high = [fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD, 100) for _, sock in sockets]  # clear of 3, 4, ...
    try:
        variables = {
            **env,
            "LB_FDS": " ".join(map(str, high)),
            "LISTEN_FDS": str(len(sockets)),
            "LISTEN_FDNAMES": ":".join(name for name, _ in sockets),
        }
        with open(log, "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-c", _EXEC, *command],
                pass_fds=high,
                env={**os.environ, **variables},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    finally:
        for fd in high:
            os.close(fd)


class NotifySocket:
    """The NOTIFY_SOCKET a service sends its state to; every message is kept in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []
        self._read = 0

    def next(self, containing: str, within: float = 60.0) -> str:
        """The next message (after those returned before) with the line ``containing``."""
        deadline = time.monotonic() + within
        while True:
            while self._read < len(self.messages):
                message = self.messages[self._read]
                self._read += 1
                if any(line.startswith(containing) for line in message.splitlines()):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {containing!r} within {within:.0f} s; got {self.messages[-5:]}")
            self.sock.settimeout(left)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass

    def close(self) -> None:
        self.sock.close()
