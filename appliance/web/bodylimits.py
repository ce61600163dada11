"""How large a request body each route may send, checked before the application reads it.

waitress refuses any body over ``MAX_BODY`` itself, from the Content-Length header (or while
de-chunking) and before buffering it; the routes anyone may reach without a login take far less.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

MAX_BODY = 1 << 20  # the largest form a page posts (settings, corrections) is a few KiB
PUBLIC_FORM_BODY = 16 << 10  # login and first-run setup: a name, a password, a code
SMALL_BODY_ROUTES = ("/login", "/setup", "/logout")


def body_limit(path: str) -> int:
    return PUBLIC_FORM_BODY if path in SMALL_BODY_ROUTES else MAX_BODY


def with_body_limits(app: Callable) -> Callable:
    """WSGI middleware: 413 for a body over its route's limit, before the route runs."""

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        declared = environ.get("CONTENT_LENGTH") or "0"
        limit = body_limit(environ.get("PATH_INFO", ""))
        if not declared.isdecimal() or len(declared) > 12 or int(declared) > limit:
            start_response("413 Payload Too Large", [("Content-Type", "text/plain")])
            return [f"Request body over {limit} bytes for this page.\n".encode()]
        return app(environ, start_response)

    return wrapped
