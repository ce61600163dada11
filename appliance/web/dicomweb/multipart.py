"""Writing multipart/related bodies (RFC 2387) as they are sent: one part at a time, each
part's content an iterator of pieces, so a study of any size leaves in constant memory."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from appliance.archive import CHUNK

Part = tuple[str, Iterable[bytes]]  # (the part's Content-Type, its content in pieces)


def new_boundary() -> str:
    return "lightbox-" + secrets.token_hex(16)


def content_type(boundary: str, part_type: str) -> str:
    """The body's Content-Type, with the ``type`` of its parts (PS3.18 8.7.3.3)."""
    return f'multipart/related; type="{part_type}"; boundary={boundary}'


def stream(boundary: str, parts: Iterable[Part]) -> Iterator[bytes]:
    """The body: each part between boundaries; the closing delimiter even when there are none."""
    for part_type, content in parts:
        yield f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode()
        yield from content
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def file_pieces(path: Path, offset: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of the file at ``path`` from ``offset``, in pieces of CHUNK bytes."""
    with open(path, "rb") as f:
        f.seek(offset)
        while length > 0:
            piece = f.read(min(CHUNK, length))
            if not piece:
                return
            length -= len(piece)
            yield piece
