"""The bucket's client in a child process, ``python -m appliance.backup``, started by
``bucket.open_bucket``: boto3 and botocore load here, and go when it exits.

It reads its job (the bucket, as JSON) on stdin, then takes connections over its control
socket, each answered in a thread of its own: a call in (a method of boto3's S3 client, its
arguments, a body), its answer out (the result, an error, or a body in chunks).  It exits
when the control socket closes, and dies with the process that started it."""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
from typing import Any

from appliance.backup.bucket import DATA, END, FAILED, METHODS, receive, send
from appliance.backup.target import Target
from appliance.children import die_with_parent
from appliance.logs import configure_logging
from appliance.malloc import limit_malloc_arenas, return_large_buffers_to_the_os

CHUNK = 1 << 20  # of a streamed body


def main() -> int:
    job = json.load(sys.stdin)
    die_with_parent(job["parent"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on a terminal reaches the group: the parent decides
    configure_logging("warning")
    limit_malloc_arenas()
    return_large_buffers_to_the_os()
    client = s3_client(Target(**job["target"]), job["checksums"])
    control = socket.socket(fileno=job["control"])
    while True:
        message, fds, _, _ = socket.recv_fds(control, 16, 1)
        if not message:
            return 0  # the parent is done with the bucket
        threading.Thread(target=_serve, args=(socket.socket(fileno=fds[0]), client), daemon=True).start()


def s3_client(target: Target, checksums: str) -> Any:
    """A boto3 client; ``checksums`` "when_supported" for AWS buckets with Object Lock."""
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path" if target.path_style else "virtual"},
        request_checksum_calculation=checksums,  # "when_required": clones choke on trailing CRCs
        response_checksum_validation=checksums,
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=16,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=target.endpoint or None,
        region_name=target.region,
        aws_access_key_id=target.access_key_id or None,
        aws_secret_access_key=target.secret_access_key or None,
        config=config,
    )


def _serve(conn: socket.socket, client: Any) -> None:
    with conn:
        try:
            while (header := receive(conn)) is not None:
                call = json.loads(header)
                arguments = call["arguments"]
                if call["body"]:
                    arguments["Body"] = receive(conn)
                _answer(conn, client, call["method"], arguments)
        except OSError:
            pass  # the parent closed the connection, or is gone


def _answer(conn: socket.socket, client: Any, method: str, arguments: dict[str, Any]) -> None:
    if method not in METHODS:
        send(conn, json.dumps({"error": _error(ValueError(f"not a bucket call: {method}"))}).encode())
        return
    try:
        result = getattr(client, method)(**arguments)
    except Exception as exc:
        send(conn, json.dumps({"error": _error(exc)}).encode())
        return
    result.pop("ResponseMetadata", None)
    body = result.pop("Body", None)
    if body is None:
        send(conn, json.dumps({"result": result}, default=str).encode())
        return
    send(conn, json.dumps({"stream": result}, default=str).encode())
    with body:
        while True:
            try:
                chunk = body.read(CHUNK)
            except Exception as exc:  # the bucket's connection dropped: worth a retry
                send(conn, FAILED + json.dumps(_error(exc)).encode())
                return
            if not chunk:
                break
            send(conn, DATA + chunk)
    send(conn, END)


def _error(exc: Exception) -> dict[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        return {"kind": "bucket", "code": str(exc.response.get("Error", {}).get("Code", "")), "message": str(exc)}
    if isinstance(exc, BotoCoreError):
        return {"kind": "unreachable", "message": str(exc)}
    return {"kind": "bucket", "code": type(exc).__name__, "message": str(exc)}


if __name__ == "__main__":
    sys.exit(main())
