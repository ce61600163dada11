"""HTTPS for the web UI, as the admin sets it (``archive.site.https()``, changed at once).

The HTTPS port is served whenever ``https_port`` is set (``tls`` does the TLS); what an admin
chooses, on the Admin page or in the wizard's last step:

- **HTTPS only**: every plain-HTTP request but ``/healthz`` (the service's own health check)
  is sent to the same path on HTTPS (301 for GET and HEAD, 308 otherwise).  It can be turned on
  only from a page opened over HTTPS, so the admin knows their browser gets there; turning it
  on ends every other session, whose cookies may have crossed the network in clear.  Before
  any admin exists it is off: the setup page is served on both ports, and over plain HTTP it
  says so and links to its HTTPS twin with the certificate's fingerprint to check.
- **The certificate is trusted by our browsers**: then HTTPS answers carry HSTS (browsers use
  nothing but HTTPS here for a year).  Never by default: with a certificate browsers do not
  trust, HSTS would leave no way past their warning.

Session cookies are ``Secure`` on HTTPS (``auth``).  The certificate's SHA-256 fingerprint is
logged at start-up and shown on the setup page, the Admin page and the wizard's step, so that
the first visit can be checked against what the box's console shows: it is also kept in the
data folder's ``tls/https-fingerprint``, which the appliance image shows on the console and the
memory card (image-build/).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bottle
from bottle import request

from appliance.archive import Archive, HttpsPolicy, audit
from appliance.certificates import Identity
from appliance.files import write_private
from appliance.web.auth import Guard, fail
from appliance.web.auth import https as over_https

LOG = logging.getLogger("lightbox.web.https")

HSTS = "max-age=31536000"  # a year; not includeSubDomains: the box answers for its own name only
NOT_REDIRECTED = "/healthz"
FINGERPRINT_FILE = Path("tls", "https-fingerprint")  # in the data folder
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\]")


@dataclass(frozen=True)
class HttpsDoor:
    """The HTTPS port in force (0: none) and the certificate it shows."""

    port: int = 0
    identity: Identity | None = None

    @property
    def served(self) -> bool:
        return bool(self.port and self.identity)

    def url(self, environ: dict[str, Any], path: str = "/") -> str:
        """``path`` on this box over HTTPS, at the host the browser asked for ("" if none usable)."""
        host = browser_host(environ)
        if not (self.served and host):
            return ""
        return f"https://{host}{'' if self.port == 443 else f':{self.port}'}{path}"


def browser_host(environ: dict[str, Any]) -> str:
    """The Host header without its port, if it is a plain host name or address ("" if not)."""
    host = environ.get("HTTP_HOST", "")
    name = host[: host.find("]") + 1] if host.startswith("[") else host.rpartition(":")[0] if ":" in host else host
    return name if _HOST.fullmatch(name) else ""


def with_https(app: Callable, archive: Archive, door: HttpsDoor) -> Callable:
    """WSGI middleware: the admin's HTTPS policy, on every answer (errors and static files too)."""

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        secure = over_https(environ)
        if not door.served or (not secure and environ.get("PATH_INFO") == NOT_REDIRECTED):
            return app(environ, start_response)  # the health check reads no policy
        policy = archive.site.https()
        if not secure:
            return _to_https(environ, start_response, door) if policy.only else app(environ, start_response)
        if not policy.trusted:
            return app(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, ("Strict-Transport-Security", HSTS)], exc_info)

        return app(environ, start)

    return wrapped


def _to_https(environ: dict, start_response: Callable, door: HttpsDoor) -> Iterable[bytes]:
    path = quote(environ.get("PATH_INFO", "/").encode("latin-1"), safe="/:@!$&'()*+,;=-._~")
    query = environ.get("QUERY_STRING", "")
    target = door.url(
        environ, path + ("?" + quote(query.encode("latin-1"), safe="=&%+;,/?:@!$'()*-._~") if query else "")
    )
    if not target:
        start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"This box answers over HTTPS only: open its https:// address.\n"]
    status = "301 Moved Permanently" if environ.get("REQUEST_METHOD") in ("GET", "HEAD") else "308 Permanent Redirect"
    start_response(status, [("Location", target), ("Content-Type", "text/plain; charset=utf-8")])
    return [f"HTTPS only: {target}\n".encode()]


def facts(archive: Archive, door: HttpsDoor, path: str = "/") -> dict[str, Any]:
    """What pages show about HTTPS (and ``GET /api/https``), for the request being answered."""
    policy = archive.site.https()
    identity = door.identity
    return {
        "served": door.served,
        "port": door.port,
        "fingerprint": identity.fingerprint if door.served and identity else "",
        "made_here": bool(identity and identity.made_here),
        "over_https": over_https(),
        "url": door.url(request.environ, path),
        "only": policy.only,
        "trusted": policy.trusted,
    }


def _checked(name: str) -> bool:
    return (request.forms.getunicode(name, "") or "").lower() in ("on", "1", "true", "yes")


def save(archive: Archive, guard: Guard, door: HttpsDoor) -> HttpsPolicy:
    """Keep the policy the posted form says (checkboxes ``https_only``, ``certificate_trusted``)."""
    wanted = HttpsPolicy(only=_checked("https_only"), trusted=_checked("certificate_trusted"))
    before = archive.site.https()
    if wanted == before:
        return before
    if (wanted.only or wanted.trusted) and not door.served:
        raise fail(400, "HTTPS is off on this box (https_port = 0)")
    if wanted.only and not before.only and not over_https():
        raise fail(
            400, f"turn HTTPS only on from a page opened over HTTPS ({door.url(request.environ, '/admin')}): "
            "so you know this browser gets there",
        )  # fmt: skip
    archive.site.set_https(wanted)
    guard.audit(audit.SECURITY_ALERT, action="U", detail=f"https: only={wanted.only} trusted={wanted.trusted}")
    if wanted.only and not before.only:
        # Cookies that went over plain HTTP could have been read on the way: those sessions end,
        # and this one goes on under a new cookie that never leaves HTTPS.
        token = guard.auth.start_session(guard.user())
        archive.sessions.end_all_but(token)
    return wanted


def publish(door: HttpsDoor, data_dir: Path) -> None:
    """The fingerprint in the log, and in ``FINGERPRINT_FILE`` (one line; none without HTTPS)."""
    path = data_dir / FINGERPRINT_FILE
    if not (door.served and door.identity is not None):
        path.unlink(missing_ok=True)
        return
    LOG.info(
        "https port=%d certificate_sha256=%s made_here=%s: a browser's first visit shows this fingerprint",
        door.port, door.identity.fingerprint, "yes" if door.identity.made_here else "no",
    )  # fmt: skip
    line = door.identity.fingerprint.encode() + b"\n"
    try:
        if not path.exists() or path.read_bytes() != line:  # an SD card: no write for nothing
            write_private(path, line)
    except OSError as exc:
        LOG.error("https_fingerprint_file_unwritable path=%s error=%s", path, exc)


def install(app: bottle.Bottle, archive: Archive, guard: Guard, door: HttpsDoor) -> None:
    publish(door, archive.data_dir)

    @app.get("/api/https")
    @guard("admin")
    def https_api() -> dict:
        return facts(archive, door)

    @app.post("/api/https")
    @guard("admin")
    def save_https() -> dict:
        save(archive, guard, door)
        return {"ok": True, **facts(archive, door)}

    @app.get("/admin/certificate.pem")
    @guard("admin")
    def certificate():
        """The certificate, for a browser or a system to trust (it is public: no key in it)."""
        if door.identity is None:
            raise fail(404, "no certificate")
        return bottle.static_file(
            door.identity.certificate.name, root=str(door.identity.certificate.parent),
            mimetype="application/x-pem-file", download="lightbox-certificate.pem",
        )  # fmt: skip
