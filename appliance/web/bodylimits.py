"""How large a request body each route may send, checked before the body is read.

waitress reads a whole body before the application runs (into memory up to ``inbuf_overflow``,
512 KiB, then into a temporary file), so the limit has to be applied when the headers end:
``routed_parser`` gives waitress a request parser that does it from the route and the declared
Content-Length (or while de-chunking) and answers 413 without reading the body.  The routes
anyone may reach without a login take far less; STOW-RS (``POST /dicom-web/studies``) may send
up to the ``dicomweb_max_stow_mb`` setting, but only with credentials on the request (their
check comes later, in the application: this is only so an anonymous peer gets the small bound),
and its body is buffered in the data folder's spool (so is an attached file's, up to the
``attach_max_mb`` setting), on the storage disk, never in /tmp (a
tmpfs on many systems: RAM).  ``with_body_limits`` checks the same in front of the application.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waitress.buffers import OverflowableBuffer, TempfileBasedBuffer
from waitress.parser import HTTPRequestParser

MAX_BODY = 1 << 20  # the largest form a page posts (settings, corrections) is a few KiB
PUBLIC_FORM_BODY = 16 << 10  # login and first-run setup: a name, a password, a code
SMALL_BODY_ROUTES = ("/login", "/setup", "/logout")
STOW_PATH = "/dicom-web/studies"


def is_stow(method: str, path: str) -> bool:
    return method == "POST" and (path == STOW_PATH or path.startswith(STOW_PATH + "/"))


def is_attach(method: str, path: str) -> bool:
    """POST /api/studies/<study_uid>/attachments: a file attached to a study (web/attachments.py)."""
    parts = path.split("/")
    return method == "POST" and len(parts) == 5 and parts[1:3] == ["api", "studies"] and parts[4] == "attachments"


def is_large(method: str, path: str) -> bool:
    """A route whose body is buffered in the spool, not in memory."""
    return is_stow(method, path) or is_attach(method, path)


@dataclass(frozen=True)
class BodyLimits:
    stow: int = MAX_BODY  # bytes a STOW-RS request may send (the dicomweb_max_stow_mb setting)
    attach: int = MAX_BODY  # bytes an attached file may have (the attach_max_mb setting)

    def for_request(self, method: str, path: str, credentials: bool) -> int:
        if path in SMALL_BODY_ROUTES:
            return PUBLIC_FORM_BODY
        if credentials and is_stow(method, path):
            return max(self.stow, MAX_BODY)
        if credentials and is_attach(method, path):
            return max(self.attach, MAX_BODY)
        return MAX_BODY

    @property
    def largest(self) -> int:
        return max(self.stow, self.attach, MAX_BODY)


def with_body_limits(app: Callable, limits: BodyLimits) -> Callable:
    """WSGI middleware: 413 for a body over its route's limit, before the route runs."""

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        declared = environ.get("CONTENT_LENGTH") or "0"
        credentials = bool(environ.get("HTTP_AUTHORIZATION") or environ.get("HTTP_COOKIE"))
        limit = limits.for_request(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""), credentials)
        if not declared.isdecimal() or len(declared) > 12 or int(declared) > limit:
            start_response("413 Payload Too Large", [("Content-Type", "text/plain")])
            return [f"Request body over {limit} bytes for this page.\n".encode()]
        return app(environ, start_response)

    return wrapped


def routed_parser(limits: BodyLimits, spool: Path) -> type[HTTPRequestParser]:
    """A waitress request parser applying ``limits`` when the headers end (see the module)."""

    class SpoolFileBuffer(TempfileBasedBuffer):
        def newfile(self) -> Any:
            return tempfile.TemporaryFile("w+b", dir=spool)  # unlinked at once: nothing stays behind

    class SpoolBuffer(OverflowableBuffer):
        def _set_large_buffer(self) -> None:
            old = self.buf  # type: ignore[has-type]
            self.buf = SpoolFileBuffer(old)
            if hasattr(old, "close"):
                old.close()
            self.overflowed = True

    class RoutedParser(HTTPRequestParser):
        def parse_header(self, header_plus: bytes) -> None:
            super().parse_header(header_plus)
            credentials = bool(self.headers.get("AUTHORIZATION") or self.headers.get("COOKIE"))
            limit = limits.for_request(self.command, self.path, credentials)
            self.adj = copy.copy(self.adj)  # type: ignore[has-type]
            self.adj.max_request_body_size = limit + 1  # waitress refuses a body of this size or more
            if self.body_rcv is not None and is_large(self.command, self.path):
                self.body_rcv.buf = SpoolBuffer(self.adj.inbuf_overflow)

    return RoutedParser
