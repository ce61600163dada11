"""Reading a multipart body (RFC 2046 5.1, RFC 2387 multipart/related) part by part, in bounded
memory: each part's content comes as chunks of at most ``chunk`` bytes, whatever its size
(views, valid until the next chunk is asked for).

Only the current chunk and a delimiter's length of look-behind are held; part headers are
bounded by ``MAX_PART_HEADERS``.  A body that ends before its close delimiter, or part headers
that never end, raise ``MalformedMultipart`` (the parts read before it were whole).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

CHUNK = 256 << 10
MAX_PART_HEADERS = 16 << 10
MAX_BOUNDARY = 70  # RFC 2046 5.1.1


class MalformedMultipart(ValueError):
    pass


@dataclass
class Part:
    headers: dict[str, str]  # names in lower case
    chunks: Iterator[memoryview]  # the content; read it before asking for the next part

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class MultipartReader:
    def __init__(self, stream: BinaryIO, boundary: str, length: int, chunk: int = CHUNK) -> None:
        if not 0 < len(boundary) <= MAX_BOUNDARY or not boundary.isascii():
            raise MalformedMultipart("the boundary parameter is missing or not 1 to 70 ASCII characters")
        self.stream = stream
        self.left = length  # bytes of the body not read yet
        self.chunk = chunk
        self.delimiter = b"\r\n--" + boundary.encode("ascii")
        # What was read and not yet consumed is buf[pos:]; content is handed out as views of it
        # (buf is never changed, only replaced), so each byte is copied once, on its way in.
        self.buf = b"\r\n"  # so that a delimiter at the very start is found like any other
        self.pos = 0

    def parts(self) -> Iterator[Part]:
        for _ in self._content():  # the preamble, ignored
            pass
        while True:
            self._need(2)
            if self.buf[self.pos : self.pos + 2] == b"--":
                return  # the close delimiter; the epilogue is ignored
            end = self._find(b"\r\n")
            if self.buf[self.pos : end].strip(b" \t"):
                raise MalformedMultipart("text after a boundary delimiter")
            self.pos = end + 2
            headers = self._headers()
            content = self._content()
            yield Part(headers, content)
            for _ in content:  # what the caller left unread
                pass

    def _headers(self) -> dict[str, str]:
        self._need(2)
        if self.buf[self.pos : self.pos + 2] == b"\r\n":
            self.pos += 2
            return {}
        end = self._find(b"\r\n\r\n")
        block = self.buf[self.pos : end].decode("latin-1")
        self.pos = end + 4
        headers: dict[str, str] = {}
        for line in block.split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise MalformedMultipart("a part header without a name")
            headers[name.strip().lower()] = value.strip()
        return headers

    def _content(self) -> Iterator[memoryview]:
        """The bytes up to the next delimiter, which is consumed."""
        keep = len(self.delimiter) - 1
        while True:
            at = self.buf.find(self.delimiter, self.pos)
            if at >= 0:
                if at > self.pos:
                    yield memoryview(self.buf)[self.pos : at]
                self.pos = at + len(self.delimiter)
                return
            end = len(self.buf) - keep
            if end > self.pos:
                yield memoryview(self.buf)[self.pos : end]
                self.pos = end
            if not self._fill():
                raise MalformedMultipart("the body ends inside a part")

    def _find(self, pattern: bytes) -> int:
        """Where ``pattern`` begins in buf, reading on until it comes (within the header bound)."""
        while (at := self.buf.find(pattern, self.pos)) < 0:
            if len(self.buf) - self.pos > MAX_PART_HEADERS:
                raise MalformedMultipart("part headers too long")
            if not self._fill():
                raise MalformedMultipart("the body ends inside part headers")
        return at

    def _need(self, size: int) -> None:
        while len(self.buf) - self.pos < size:
            if not self._fill():
                raise MalformedMultipart("the body ends without a close delimiter")

    def _fill(self) -> bool:
        if self.left <= 0:
            return False
        data = self.stream.read(min(self.chunk, self.left))
        if not data:
            self.left = 0
            return False
        self.left -= len(data)
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
        return True
