"""The bucket's client, in a child process: ``python -m appliance.backup`` (``__main__.py``)
holds boto3, botocore and the S3 client, and ``open_bucket`` hands out a client here that
forwards each call to it.

Why: boto3, botocore and an S3 client take ~40 MB that a Python process never gives back
(deleting the client and malloc_trim return < 1 MB), and the service backs up every night or
every few minutes: it kept them for good.  The child lives for one run, verification,
set-up or restore.  Why only the bucket's side: a child that ran the whole backup imports
the archive (pydicom, numpy, peewee: ~35 MB more) that the service has already; measured
under the mixed load, it took 72-80 MB while it ran.  The run itself (the change log, the
cursor, the recorded objects, the encryption) stays where it was, unchanged.  Why a new
interpreter rather than a fork: a fork starts from the service's heap, and from its threads'
locks in whatever state they were.

Each calling thread takes a connection of its own (one end of a socket pair, the other sent
to the child, which answers it in a thread).  A call sends the method's name, its arguments
(JSON) and the body; the answer is the result (JSON), an error (``BucketError``,
``Unreachable``), or for ``get_object`` a body in chunks.  A child that dies ends every call
with ``Interrupted``, as ``stopping`` does (a call looks at it first, and while it waits).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

from appliance.backup.target import BucketError, Interrupted, Target, Unreachable

METHODS = frozenset({
    "put_object", "get_object", "head_object", "delete_object", "list_objects_v2", "create_multipart_upload",
    "upload_part", "complete_multipart_upload", "abort_multipart_upload",
})  # fmt: skip
POLL = 0.5  # seconds between looks at ``stopping`` while a call waits
EXIT_WITHIN = 10.0  # seconds the child has to exit once its control socket is closed
DATA, END, FAILED = b"d", b"z", b"e"  # the first byte of each piece of a streamed body
_LENGTH = struct.Struct(">I")


@contextlib.contextmanager
def open_bucket(target: Target, checksums: str, stopping: threading.Event | None = None) -> Iterator[Any]:
    """A client of ``target`` with the methods of boto3's S3 client that the backup calls
    (``METHODS``); its child process lives as long as the ``with``."""
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.backup"], stdin=subprocess.PIPE, pass_fds=(theirs.fileno(),)
        )  # its stdout and stderr are ours: its log lines go where ours go
        job = {"target": asdict(target), "checksums": checksums, "control": theirs.fileno(), "parent": os.getpid()}
    finally:
        theirs.close()
    client = Client(proc, ours, stopping)
    try:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError), proc.stdin:  # if it died at once, the first call says so
            proc.stdin.write(json.dumps(job).encode())
        yield client
    finally:
        client.close()
        ours.close()  # its control socket closes: it exits
        try:
            proc.wait(EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Client:
    """boto3's S3 client as far as the backup calls it, each call answered by the child."""

    def __init__(self, proc: subprocess.Popen, control: socket.socket, stopping: threading.Event | None) -> None:
        self._proc = proc
        self._control = control
        self._stopping = stopping
        self._lock = threading.Lock()
        self._idle: list[socket.socket] = []
        self._open: set[socket.socket] = set()

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method not in METHODS:
            raise AttributeError(method)
        return lambda **arguments: self._call(method, arguments)

    def close(self) -> None:
        with self._lock:
            for conn in self._open:
                conn.close()
            self._open.clear()
            self._idle.clear()

    def _call(self, method: str, arguments: dict[str, Any]) -> Any:
        self._waiting()
        body = arguments.pop("Body", None)
        conn = self._take()
        try:
            send(conn, json.dumps({"method": method, "arguments": arguments, "body": body is not None}).encode())
            if body is not None:
                send(conn, body)
            answer = json.loads(self.receive(conn))
        except OSError:  # a broken pipe: it is gone
            self.drop(conn)
            raise self._gone() from None
        except BaseException:
            self.drop(conn)
            raise
        if "stream" in answer:
            return {**answer["stream"], "Body": _Body(self, conn)}  # the connection is the body's until its end
        self.give(conn)
        if "error" in answer:
            raise _error(answer["error"])
        return answer["result"]

    def receive(self, conn: socket.socket) -> bytearray:
        data = receive(conn, self._waiting)
        if data is None:
            raise self._gone()
        return data

    def give(self, conn: socket.socket) -> None:
        with self._lock:
            if conn in self._open:
                self._idle.append(conn)

    def drop(self, conn: socket.socket) -> None:
        """A connection left in the middle of a call: closed, and the child's thread for it ends."""
        with self._lock:
            self._open.discard(conn)
        conn.close()

    def _take(self) -> socket.socket:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        mine, theirs = socket.socketpair()
        try:
            socket.send_fds(self._control, [b"c"], [theirs.fileno()])
        except OSError:
            mine.close()
            raise self._gone() from None
        finally:
            theirs.close()
        with self._lock:
            self._open.add(mine)
        return mine

    def _waiting(self) -> None:
        if self._stopping is not None and self._stopping.is_set():
            raise Interrupted("the service stopped during the run")

    def _gone(self) -> Interrupted:
        try:
            status = self._proc.wait(EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            return Interrupted("the backup's S3 process stopped answering")
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        return Interrupted(f"the backup's S3 process {how}")


class _Body:
    """A ``get_object`` body, streamed: ``read`` and ``close``, as botocore's."""

    def __init__(self, client: Client, conn: socket.socket) -> None:
        self._client = client
        self._conn: socket.socket | None = conn
        self._piece = memoryview(b"")  # the rest of the chunk received last

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            if not self._piece:
                if self._conn is None:
                    break
                self._next()
                continue
            take = len(self._piece) if size < 0 else min(size - len(out), len(self._piece))
            out += self._piece[:take]
            self._piece = self._piece[take:]
        return bytes(out)

    def close(self) -> None:
        if self._conn is not None:  # left before its end: the connection is mid-stream
            self._client.drop(self._conn)
            self._conn = None

    def _next(self) -> None:
        assert self._conn is not None
        try:
            piece = self._client.receive(self._conn)
        except BaseException:
            self.close()
            raise
        if piece[:1] == DATA:
            self._piece = memoryview(piece)[1:]
            return
        self._client.give(self._conn)
        self._conn = None
        if piece[:1] == FAILED:
            raise _error(json.loads(piece[1:]))


def send(conn: socket.socket, data: bytes) -> None:
    conn.sendall(_LENGTH.pack(len(data)))
    conn.sendall(data)


def receive(conn: socket.socket, waiting: Callable[[], None] | None = None) -> bytearray | None:
    """One message, or None if the other end closed the connection; ``waiting`` is called
    every POLL seconds while nothing comes (it may raise)."""
    header = _exactly(conn, _LENGTH.size, waiting)
    return None if header is None else _exactly(conn, _LENGTH.unpack(header)[0], waiting)


def _exactly(conn: socket.socket, size: int, waiting: Callable[[], None] | None) -> bytearray | None:
    data = bytearray(size)  # received in place: a 5 MiB part is in memory once
    view, got = memoryview(data), 0
    while got < size:
        if waiting is not None and not select.select([conn], [], [], POLL)[0]:
            waiting()
            continue
        try:
            count = conn.recv_into(view[got:])
        except ConnectionError:
            count = 0
        if not count:
            return None
        got += count
    return data


def _error(error: dict[str, str]) -> Exception:
    if error["kind"] == "bucket":
        return BucketError(error["code"], error["message"])
    return Unreachable(error["message"])
