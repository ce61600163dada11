"""A window of a file over HTTP, with Range requests (RFC 9110 section 14).

A ``<video>`` seeks with Range requests, and Safari plays nothing that is not answered
``206 Partial Content``; PDF viewers fetch pages the same way.  One range per request: a
request for several is answered with the whole (RFC 9110 allows a server to ignore Range).
The bytes are streamed from the file in pieces, never read whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import bottle

from appliance.archive import CHUNK

_RANGE = re.compile(r"^bytes=\s*(\d*)\s*-\s*(\d*)\s*$")


class Unsatisfiable(ValueError):
    """A Range header that is malformed or lies outside the content: answered 416."""


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) bytes asked for, inclusive; None for the whole content."""
    if not header or not header.strip().lower().startswith("bytes=") or "," in header:
        return None  # no range, another unit, or several ranges: the whole content
    match = _RANGE.match(header.strip().lower())
    if match is None or match.groups() == ("", ""):
        raise Unsatisfiable(f"malformed range {header[:64]!r}")
    first, last = match.groups()
    if first == "":  # the last N bytes
        if int(last) == 0 or size == 0:
            raise Unsatisfiable("empty suffix range")
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise Unsatisfiable(f"range {start}-{last} outside {size} bytes")
    return start, end


def first_piece() -> bool:
    """Whether this request asks for the content from its first byte (a viewing starts so; the
    audit trail records that one, not every seek)."""
    header = bottle.request.get_header("Range")
    return not header or header.replace(" ", "").lower().startswith("bytes=0-")


class _Window:
    """The iterable body: ``length`` bytes of an open file from ``offset``; closed by the server."""

    def __init__(self, f: BinaryIO, offset: int, length: int) -> None:
        self.file, self.left = f, length
        f.seek(offset)

    def __iter__(self) -> Iterator[bytes]:
        while self.left > 0:
            chunk = self.file.read(min(CHUNK, self.left))
            if not chunk:
                return
            self.left -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.file.close()


def window_response(path: Path, offset: int, size: int, headers: dict[str, str], etag: str) -> bottle.HTTPResponse:
    """``size`` bytes of ``path`` from ``offset`` as the content, whole (200) or the range
    asked for (206); 416 for a range that is malformed or outside it.  Raises OSError if the
    file cannot be opened (before any byte is sent)."""
    headers = {**headers, "Accept-Ranges": "bytes", "ETag": etag}
    header = bottle.request.get_header("Range")
    if_range = bottle.request.get_header("If-Range")
    if if_range is not None and if_range != etag:
        header = None  # the client holds other bytes: send them all afresh
    try:
        wanted = requested_range(header, size)
    except Unsatisfiable as exc:
        return bottle.HTTPResponse(f"{exc}\n", 416, {**headers, "Content-Range": f"bytes */{size}",
                                                       "Content-Type": "text/plain; charset=utf-8"})  # fmt: skip
    if size == 0:
        return bottle.HTTPResponse(b"", 200, {**headers, "Content-Length": "0"})
    f = open(path, "rb")
    if wanted is None:
        return bottle.HTTPResponse(_Window(f, offset, size), 200, {**headers, "Content-Length": str(size)})
    first, last = wanted
    headers.update({"Content-Range": f"bytes {first}-{last}/{size}", "Content-Length": str(last - first + 1)})
    return bottle.HTTPResponse(_Window(f, offset + first, last - first + 1), 206, headers)
