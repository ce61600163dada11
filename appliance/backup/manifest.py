"""The manifest: JSON lines, a header then one line per object (name, SOP Instance UID,
file key, size, SHA-256 of the plaintext, deleted_at).  Written to and read from a local
temporary file, so a manifest of a million objects never sits in memory."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "lightbox-backup-manifest"
VERSION = 1


class ManifestError(Exception):
    pass


@dataclass(frozen=True)
class Header:
    run: int
    created: float
    change_seq: int  # the newest change the index snapshot holds
    snapshot: str  # its object name under index/
    snapshot_sha256: str
    snapshot_size: int
    objects: int


@dataclass(frozen=True)
class Entry:
    name: str
    sop_uid: str
    file_key: str
    size: int
    sha256: str
    deleted_at: float | None


def write(path: Path, header: Header, entries: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(json.dumps({"format": FORMAT, "version": VERSION, **header.__dict__}) + "\n")
        for entry in entries:
            out.write(json.dumps(entry, separators=(",", ":")) + "\n")


def read_header(path: Path) -> Header:
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    try:
        raw = json.loads(first)
    except ValueError:
        raise ManifestError("the manifest is not readable") from None
    if raw.pop("format", None) != FORMAT or raw.pop("version", None) != VERSION:
        raise ManifestError("not a Lightbox backup manifest of a known version")
    return Header(**raw)


def entries(path: Path) -> Iterator[Entry]:
    with open(path, encoding="utf-8") as f:
        f.readline()
        for line in f:
            yield Entry(**json.loads(line))
