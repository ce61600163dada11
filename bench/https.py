"""HTTPS benchmark: what TLS costs Lightbox's web port (against its own plain HTTP port), and
what stalled TLS handshakes do to it.  The certificate is one Lightbox makes for itself (RSA 2048).

  connect     a new connection per request: TCP, the TLS handshake, GET /healthz, close;
              --connections of them one after another (ms: median, p95; the server's CPU per
              connection), on the HTTPS port and on the HTTP port.
  keepalive   --requests GETs on one TLS connection (ms: median, p95).
  stalled     --stalled connections from 8 addresses, each sending half a ClientHello and then
              nothing: while they are held, a new HTTPS GET (answered within 5 s, and its time)
              and the server's PSS before and during.

No Orthanc side by side: Debian 12's Orthanc 1.10.1 dies (SIGSEGV in a civetweb worker) at the
first HTTPS connection with "SslEnabled": true.  Run as `python -m bench.https`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import socket
import ssl
import statistics
import sys
import time
from collections.abc import Iterator, Sequence

from bench import harness, servers
from bench.harness import BenchError, p95
from bench.procstat import cpu_seconds, pss_bytes

STALL_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 10)]  # Lightbox lets one address hold 32
ANSWER_WITHIN_S = 5.0
PATH = "/healthz"


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the bench made the certificate
    return context


def get(port: int, path: str, tls: ssl.SSLContext | None, timeout: float = 30.0) -> float:
    """One request on a new connection: its time in ms."""
    started = time.perf_counter()
    kind = http.client.HTTPSConnection if tls else http.client.HTTPConnection
    connection = kind("127.0.0.1", port, timeout=timeout, **({"context": tls} if tls else {}))
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise BenchError(f"GET {path} on port {port}: HTTP {answer.status}")
    finally:
        connection.close()
    return (time.perf_counter() - started) * 1000


def connect_figures(label: str, pid: int, port: int, tls: ssl.SSLContext | None, count: int) -> float:
    for _ in range(10):
        get(port, PATH, tls)  # warm-up
    cpu_before = cpu_seconds(pid)
    times = [get(port, PATH, tls) for _ in range(count)]
    cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / count
    median = statistics.median(times)
    print(f"{label} connect median_ms={median:.2f} p95_ms={p95(times):.2f} server_cpu_ms={cpu_ms:.2f}")
    return median


def keepalive_figures(label: str, pid: int, port: int, tls: ssl.SSLContext | None, count: int) -> float:
    kind = http.client.HTTPSConnection if tls else http.client.HTTPConnection
    connection = kind("127.0.0.1", port, timeout=30, **({"context": tls} if tls else {}))
    times = []
    try:
        for n in range(count + 10):
            if n == 10:  # the first ones warm up
                cpu_before = cpu_seconds(pid)
            started = time.perf_counter()
            connection.request("GET", PATH)
            connection.getresponse().read()
            if n >= 10:
                times.append((time.perf_counter() - started) * 1000)
        cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / count
    finally:
        connection.close()
    median = statistics.median(times)
    print(f"{label} keepalive median_ms={median:.2f} p95_ms={p95(times):.2f} server_cpu_ms={cpu_ms:.2f}")
    return median


def client_hello() -> bytes:
    outgoing = ssl.MemoryBIO()
    client = client_context().wrap_bio(ssl.MemoryBIO(), outgoing)
    with contextlib.suppress(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


@contextlib.contextmanager
def stalled(port: int, count: int) -> Iterator[int]:
    """``count`` connections stalled in their handshake (how many connected)."""
    hello, held = client_hello(), []
    try:
        for n in range(count):
            sock = socket.socket()
            sock.bind((STALL_ADDRESSES[n % len(STALL_ADDRESSES)], 0))
            sock.settimeout(ANSWER_WITHIN_S)
            try:
                sock.connect(("127.0.0.1", port))
                sock.sendall(hello[: len(hello) // 2])
            except OSError:
                sock.close()
                continue
            held.append(sock)
        time.sleep(0.5)
        yield len(held)
    finally:
        for sock in held:
            sock.close()


def answer_within(port: int, tls: ssl.SSLContext | None) -> str:
    try:
        return f"{get(port, PATH, tls, ANSWER_WITHIN_S):.1f}ms"
    except (OSError, BenchError) as exc:
        return f"none({type(exc).__name__})"


def benchmark(args: argparse.Namespace) -> None:
    env = {**servers.lightbox_env(), "LIGHTBOX_DICOM_WORKERS": "0"}  # the web's process alone
    with harness.workdir("https", args) as work, servers.lightbox_server(work, "lightbox", env=env) as server:
        pid, tls = server.proc.pid, client_context()
        plain = connect_figures("http", pid, server.http_port, None, args.connections)
        secure = connect_figures("https", pid, server.https_port, tls, args.connections)
        plain_kept = keepalive_figures("http", pid, server.http_port, None, args.requests)
        secure_kept = keepalive_figures("https", pid, server.https_port, tls, args.requests)
        before = pss_bytes(pid)
        with stalled(server.https_port, args.stalled) as held:
            during = pss_bytes(pid)
            print(f"https stalled={held} new_https_request={answer_within(server.https_port, tls)} "
                  f"new_http_request={answer_within(server.http_port, None)} pss_mb_before={before / 1e6:.1f} "
                  f"pss_mb_during={during / 1e6:.1f}")  # fmt: skip
        print(f"ratio https/http connect={secure / plain:.2f} keepalive={secure_kept / plain_kept:.2f}")


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = harness.parser("https", __doc__ or "", netns=False)
    harness.add_workdir(parser)
    parser.add_argument("--connections", type=int, default=300, help="new connections, one after another")
    parser.add_argument("--requests", type=int, default=500, help="requests on one kept-alive connection")
    parser.add_argument("--stalled", type=int, default=200, help="stalled handshakes held at once")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(harness.run("https", sys.argv[1:], parse, benchmark, netns=False))
