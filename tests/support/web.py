"""Helpers for the web UI tests: a logged-in HTTP client, the first-run setup, test studies."""

from __future__ import annotations

import http.client
import re
import time
from pathlib import Path
from urllib.parse import urlencode

import requests

from support.dicomgen import make_study
from support.lightbox import LightboxProcess

ADMIN, ADMIN_PASSWORD = "admin", "correct horse battery"
VIEWER, VIEWER_PASSWORD = "reception", "viewer password 1"
SETUP_CODE = re.compile(r"setup_code=([0-9A-F-]+)")


def base_url(server: LightboxProcess) -> str:
    return f"http://127.0.0.1:{server.http_port}"


def https_client(server: LightboxProcess, trusted: Path | None = None) -> Client:
    """A client of the HTTPS port that trusts only ``trusted`` (default: the certificate the
    box made), by the name the certificate holds (localhost)."""
    client = Client(f"https://localhost:{server.https_port}")
    client.verify = str(trusted or server.data / "tls" / "lightbox.crt")
    return client


def setup_code(server: LightboxProcess) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = SETUP_CODE.findall(server.log())
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no setup code in the log:\n{server.log()}")


class Client(requests.Session):
    """A browser-like client: same-origin Origin header on state-changing requests, no redirects followed."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.trust_env = False  # never a proxy

    def request(self, method: str, url: str, **kwargs):  # type: ignore[override]
        kwargs["allow_redirects"] = False  # Session.get() would default it to True
        kwargs.setdefault("timeout", 30)
        headers = kwargs.setdefault("headers", {})
        if method.upper() not in ("GET", "HEAD"):
            headers.setdefault("Origin", self.base)
        return super().request(method, self.base + url if url.startswith("/") else url, **kwargs)

    def csrf(self) -> str:
        return self.get("/api/me").json()["csrf_token"]

    def login(self, name: str = ADMIN, password: str = ADMIN_PASSWORD) -> requests.Response:
        return self.post("/login", data={"name": name, "password": password, "next": "/"})

    def api_post(self, path: str, method: str = "POST", **data: str) -> requests.Response:
        return self.request(method, path, data=data, headers={"X-CSRF-Token": self.csrf()})


def first_admin(server: LightboxProcess) -> Client:
    client = Client(base_url(server))
    answer = client.post(
        "/setup",
        data={"code": setup_code(server), "name": ADMIN, "password": ADMIN_PASSWORD, "password2": ADMIN_PASSWORD},
    )
    assert answer.status_code == 303, answer.text
    return client


def add_user(admin: Client, name: str, password: str, role: str = "viewer") -> Client:
    answer = admin.api_post("/api/users", name=name, password=password, role=role)
    assert answer.status_code == 200, answer.text
    client = Client(admin.base)
    assert client.login(name, password).status_code == 303
    return client


def send_study(server: LightboxProcess, folder: Path, count: int = 2, **values: object) -> str:
    """Store a small study with DCMTK storescu; return its Study Instance UID."""
    files = make_study(folder, count, **values)
    result = server.storescu(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    from pydicom import dcmread

    return str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def login_from(server: LightboxProcess, source: str, name: str, password: str) -> tuple[int, str]:
    """POST /login from ``source`` (an address of 127.0.0.0/8, for per-address rules): the
    answer's status and text."""
    body = urlencode({"name": name, "password": password}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30, source_address=(source, 0))
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": base_url(server)}
        connection.request("POST", "/login", body, headers)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()
