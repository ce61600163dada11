"""Reading a multipart body (RFC 2046 5.1, RFC 2387 multipart/related) part by part, in bounded
memory: each part's content comes as chunks of at most ``chunk`` bytes, whatever its size.

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
    chunks: Iterator[bytes]  # the content; read it before asking for the next part

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
        self.buf = bytearray(b"\r\n")  # so that a delimiter at the very start is found like any other

    def parts(self) -> Iterator[Part]:
        for _ in self._content():  # the preamble, ignored
            pass
        while True:
            self._need(2)
            if self.buf[:2] == b"--":
                return  # the close delimiter; the epilogue is ignored
            end = self._find(b"\r\n")
            if self.buf[:end].strip(b" \t"):
                raise MalformedMultipart("text after a boundary delimiter")
            del self.buf[: end + 2]
            headers = self._headers()
            content = self._content()
            yield Part(headers, content)
            for _ in content:  # what the caller left unread
                pass

    def _headers(self) -> dict[str, str]:
        self._need(2)
        if self.buf[:2] == b"\r\n":
            del self.buf[:2]
            return {}
        end = self._find(b"\r\n\r\n")
        block = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        headers: dict[str, str] = {}
        for line in block.split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise MalformedMultipart("a part header without a name")
            headers[name.strip().lower()] = value.strip()
        return headers

    def _content(self) -> Iterator[bytes]:
        """The bytes up to the next delimiter, which is consumed."""
        keep = len(self.delimiter) - 1
        while True:
            at = self.buf.find(self.delimiter)
            if at >= 0:
                if at:
                    yield bytes(self.buf[:at])
                del self.buf[: at + len(self.delimiter)]
                return
            if len(self.buf) > keep:
                yield bytes(self.buf[:-keep])
                del self.buf[:-keep]
            if not self._fill():
                raise MalformedMultipart("the body ends inside a part")

    def _find(self, pattern: bytes) -> int:
        while (at := self.buf.find(pattern)) < 0:
            if len(self.buf) > MAX_PART_HEADERS:
                raise MalformedMultipart("part headers too long")
            if not self._fill():
                raise MalformedMultipart("the body ends inside part headers")
        return at

    def _need(self, size: int) -> None:
        while len(self.buf) < size:
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
        self.buf += data
        return True
