"""Who is asking: sessions (cookie), HTTP Basic for the JSON API and DICOMweb, roles, CSRF and Origin checks.

``Guard`` is what route modules use: ``@guard`` (any logged-in user) or ``@guard("admin")``.
Every route of the app is either guarded or marked ``@public``; ``make_app`` refuses to start
otherwise.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bottle
from bottle import request, response

from appliance.archive import Account, Archive, audit, prepare_logins
from appliance.files import write_private
from appliance.web.backoff import LoginBackoff

LOG = logging.getLogger("lightbox.web.auth")

COOKIE = "lightbox_session"
CSRF_HEADER = "X-CSRF-Token"
UI_HEADER = "X-Lightbox-UI"  # sent by our own scripts: a 401 then carries no Basic challenge
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
BASIC_CACHE_S = 300.0  # a verified Basic credential is trusted this long (Argon2 costs ~35 ms and 19 MiB)
_ENV_USER = "lightbox.user"
_ENV_CSRF = "lightbox.csrf"
_ENV_VIA = "lightbox.via"  # "session" or "basic"
SHARED_BY = "lightbox.shared_by"  # who a request through a share link is, in the audit trail
SETUP_CODE = re.compile(r"[0-9A-F]{6}(?:-[0-9A-F]{6}){2}")


def client_address() -> str:
    """The peer's address as the socket saw it (never X-Forwarded-For, which anyone can send)."""
    return request.environ.get("REMOTE_ADDR", "")


def is_api() -> bool:
    """A request of scripts and viewers, not of pages: JSON errors, HTTP Basic, a 401 challenge
    instead of a redirect to the login page (the JSON API, DICOMweb and WADO-URI)."""
    return request.path.startswith(("/api/", "/dicom-web/")) or request.path in ("/dicom-web", "/wado")


def _is_form() -> bool:
    """Only a form's body is read for its CSRF field (a STOW-RS body is not bottle's to read)."""
    return request.content_type.split(";")[0].strip().lower() in (
        "application/x-www-form-urlencoded", "multipart/form-data",
    )  # fmt: skip


def https(environ: dict[str, Any] | None = None) -> bool:
    """Did the request come over TLS?  Told by the port that took it (``tls``), never by a
    header: waitress drops X-Forwarded-Proto from anyone."""
    return (request.environ if environ is None else environ).get("wsgi.url_scheme") == "https"


def public(func: Callable) -> Callable:
    """Mark a route as open to anyone: login, setup, static assets, /healthz."""
    func.access = "public"  # type: ignore[attr-defined]
    return func


def see_other(path: str) -> bottle.HTTPResponse:
    """A 303 to a path of ours (relative: right behind any proxy), keeping cookies just set."""
    answer = response.copy(cls=bottle.HTTPResponse)
    answer.status = 303
    answer.body = ""
    answer.set_header("Location", path)
    return answer


def fail(status: int, message: str, **headers: str) -> bottle.HTTPResponse:
    """An error answer: JSON under /api/, a small page elsewhere."""
    if is_api():
        body: Any = bottle.json_dumps({"error": message})
        headers.setdefault("Content-Type", "application/json")
    else:
        from appliance.web.templates import render

        body = render("error.tpl", status=status, message=message, user=None)
        headers.setdefault("Content-Type", "text/html; charset=UTF-8")
    return bottle.HTTPResponse(body, status, **headers)


class Auth:
    def __init__(self, archive: Archive, setup_code_file: Path | None = None) -> None:
        self.archive = archive
        self.backoff = LoginBackoff()
        self.setup_code = ""
        self.setup_code_file = setup_code_file
        self._basic_secret = secrets.token_bytes(32)
        self._basic_ok: dict[bytes, tuple[int, str, float]] = {}  # digest -> (user id, hash, expiry)
        self._basic_lock = threading.Lock()
        self.cors_origins: frozenset[str] = frozenset()  # other origins DICOMweb may be used from
        prepare_logins()
        if self.setup_needed():
            self.setup_code = self._kept_or_new_setup_code()
            LOG.warning(
                "first_run no users yet: open the web UI's /setup page and enter setup_code=%s", self.setup_code
            )
        else:
            self.setup_done()  # e.g. the first admin was made with `lightbox user add`

    def _kept_or_new_setup_code(self) -> str:
        """The code kept in ``setup_code_file`` by an earlier start, else a new one (kept there).

        Kept because the appliance shows it on the SD card's boot partition: an admin who reads
        it there and puts the card back must find the same code after the reboot."""
        path = self.setup_code_file
        if path is not None:
            try:
                kept = path.read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError):
                kept = ""
            if SETUP_CODE.fullmatch(kept):
                return kept
        code = "-".join(secrets.token_hex(3).upper() for _ in range(3))
        if path is not None:
            try:
                write_private(path, code.encode() + b"\n")
            except OSError as exc:
                LOG.error("setup_code_file_unwritable path=%s error=%s", path, exc)
        return code

    def setup_done(self) -> None:
        """The first admin exists: remove the kept setup code (setup is closed anyway)."""
        if self.setup_code_file is not None:
            try:
                self.setup_code_file.unlink(missing_ok=True)
            except OSError as exc:
                LOG.error("setup_code_file_not_removed path=%s error=%s", self.setup_code_file, exc)

    # ------------------------------------------------------------------ who is asking

    def setup_needed(self) -> bool:
        return self.archive.users.count() == 0

    def current(self) -> Account | None:
        """The user of this request, from the session cookie or HTTP Basic (API and DICOMweb only)."""
        if _ENV_USER in request.environ:
            return request.environ[_ENV_USER]
        account, csrf, via = None, "", ""
        token = request.get_cookie(COOKIE)
        if token:
            session = self.archive.sessions.get(token)
            if session is not None:
                account, csrf, via = session.account, session.csrf_token, "session"
        if account is None and is_api():
            account = self._basic()
            via = "basic" if account else ""
        request.environ.update({_ENV_USER: account, _ENV_CSRF: csrf, _ENV_VIA: via})
        return account

    def csrf_token(self) -> str:
        self.current()
        return request.environ.get(_ENV_CSRF, "")

    def _basic(self) -> Account | None:
        header = request.get_header("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            name, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        digest = hmac.new(self._basic_secret, header.encode(), hashlib.sha256).digest()
        now = time.monotonic()
        with self._basic_lock:
            cached = self._basic_ok.get(digest)
        if cached and cached[2] > now:
            account = self.archive.users.get(name)
            # A changed password (or a removed user) invalidates the cached credential.
            if account is not None and account.id == cached[0] and account.password_hash == cached[1]:
                return account
        keys = self.backoff.keys(client_address(), name)
        if self.backoff.wait_left(keys) > 0:
            raise fail(429, "too many failed logins; try again later", **{"Retry-After": self._retry_after(keys)})
        account = self.archive.users.authenticate(name, password)
        if account is None:
            self.backoff.failed(keys)
            self.login_failed(name, "basic")
            return None
        self.backoff.succeeded(keys)
        with self._basic_lock:
            if len(self._basic_ok) > 1000:
                self._basic_ok = {k: v for k, v in self._basic_ok.items() if v[2] > now}
            self._basic_ok[digest] = (account.id, account.password_hash, now + BASIC_CACHE_S)
        return account

    def _retry_after(self, keys: tuple[str, ...]) -> str:
        return str(max(1, int(self.backoff.wait_left(keys) + 0.999)))

    def login_failed(self, name: str, how: str) -> None:
        LOG.info("login_failed how=%s address=%s", how, client_address())
        self.archive.audit.record(
            audit.USER_AUTHENTICATION,
            name[:64],
            client_address(),
            outcome=audit.MINOR_FAILURE,
            detail=f"{how} login failed",
        )

    # ------------------------------------------------------------------ the rules

    def require(self, role: str) -> Account:
        """The request's user, or an HTTPResponse raised: setup/login needed, wrong role, or a
        state-changing request that fails the Origin or CSRF check."""
        if request.method not in SAFE_METHODS:
            self.check_origin()
        account = self.current()
        if account is None:
            if self.setup_needed():
                if is_api():
                    raise fail(401, "no user exists yet: finish the first-run setup at /setup")
                raise see_other("/setup")
            if is_api():
                challenge = {} if request.get_header(UI_HEADER) else {"WWW-Authenticate": 'Basic realm="Lightbox"'}
                raise fail(401, "login required", **challenge)
            query = request.query_string  # kept: a deep link (/ohif/viewer?StudyInstanceUIDs=...) survives the login
            raise see_other("/login?next=" + quote(request.fullpath + (f"?{query}" if query else "")))
        if role == "admin" and not account.is_admin:
            raise fail(403, "this needs an admin account")
        if request.method not in SAFE_METHODS and request.environ[_ENV_VIA] == "session":
            sent = request.get_header(CSRF_HEADER) or (request.forms.get("csrf") if _is_form() else "") or ""
            if not hmac.compare_digest(sent.encode(), request.environ[_ENV_CSRF].encode()):
                self.refused("csrf token missing or wrong")
        return account

    def check_origin(self) -> None:
        """A state-changing request must come from a page of ours: Origin (or, without it,
        Referer) must name this host, or for DICOMweb an origin of ``dicomweb_cors_origins``.
        Scripts with HTTP Basic send neither, and that is fine."""
        own = f"{request.urlparts.scheme}://{request.urlparts.netloc}"
        origin = request.get_header("Origin")
        if origin is None:
            referer = request.get_header("Referer")
            if referer is None:
                if request.get_cookie(COOKIE) or not is_api():
                    self.refused("no Origin or Referer on a state-changing request")
                return
            origin = "/".join(referer.split("/", 3)[:3])
        if origin != own and not (origin in self.cors_origins and request.path.startswith("/dicom-web/")):
            self.refused("cross-origin request")

    def refused(self, reason: str) -> None:
        LOG.warning("request_refused reason=%r path=%s address=%s", reason, request.path, client_address())
        self.archive.audit.record(
            audit.SECURITY_ALERT,
            "",
            client_address(),
            outcome=audit.SERIOUS_FAILURE,
            detail=f"{reason}: {request.path}",
        )
        raise fail(403, f"refused: {reason}")

    # ------------------------------------------------------------------ sessions

    def start_session(self, account: Account) -> str:
        """A new session and its cookie (``Secure`` over HTTPS: never sent over plain HTTP); its token."""
        token = self.archive.sessions.create(account, client_address())
        response.set_cookie(
            COOKIE, token, path="/", httponly=True, samesite="strict", secure=https(),
            max_age=int(self.archive.options.session_max_s),
        )  # fmt: skip
        return token

    def end_session(self) -> None:
        token = request.get_cookie(COOKIE)
        if token:
            self.archive.sessions.end(token)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=https())


class Guard:
    """``@guard`` or ``@guard("admin")`` in front of a route callback: the request needs a
    session (or HTTP Basic on /api/ and /dicom-web/) and, if given, the role.  ``guard.user()`` is then the
    account; ``guard.audit(...)`` records an event for it."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth
        # A share link's scope (web/shared.py): given a route's arguments, None, or what to do
        # with the route's answer when the request may read it through a share.
        self.share_scope: Callable[[dict[str, Any]], Callable[[Any], Any] | None] | None = None

    def __call__(self, role_or_func: str | Callable | None = None) -> Callable:
        if callable(role_or_func):
            return self._wrap(role_or_func, "viewer")
        role = role_or_func or "viewer"
        if role not in ("viewer", "admin"):
            raise ValueError(f"unknown role {role!r}")
        return lambda func: self._wrap(func, role)

    def _wrap(self, func: Callable, role: str) -> Callable:
        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            shared = self.share_scope(kwargs) if self.share_scope is not None else None
            if shared is not None:
                return shared(func(*args, **kwargs))
            self.auth.require(role)
            return func(*args, **kwargs)

        guarded.access = role  # type: ignore[attr-defined]
        return guarded

    def user(self) -> Account:
        account = self.auth.current()
        if account is None:  # only reachable from a route that forgot @guard
            raise fail(401, "login required")
        return account

    def csrf_token(self) -> str:
        return self.auth.csrf_token()

    def audit(self, event: str, *, action: str = "R", study_uid: str = "", detail: str = "", outcome: int = 0) -> None:
        self.auth.archive.audit.record(
            event,
            request.environ.get(SHARED_BY) or self.user().name,
            client_address(),
            action=action,
            outcome=outcome,
            study_uid=study_uid,
            detail=detail,
        )
