"""The OHIF viewer's prebuilt ``dist/`` (npm package ``@ohif/app``), installed beside the archive.

Not in the wheel: it is 50 MB packed and 215 MB unpacked, more than all of Lightbox, and not
everyone wants it.  ``lightbox ohif install`` downloads the pinned tarball from the npm registry
(or takes a local copy), refuses it unless its SHA-512 is the pinned one, and unpacks only
``package/dist/`` beside the data folder's ``ohif`` link, which is then switched in one rename:
a server never sees half a viewer.  The viewer is code, never patient data.

OHIF's build assumes it is served at ``/``; Lightbox serves it under ``/ohif/``, so the unpacked
copy is relocated: index.html's paths, webpack's public path in the bundles, the CSS's fonts.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

VERSION = "3.13.2"
TARBALL_URL = f"https://registry.npmjs.org/@ohif/app/-/app-{VERSION}.tgz"
INTEGRITY = "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
PREFIX = "/ohif/"  # where the web app serves it
LINK = "ohif"  # <data>/ohif: a symbolic link to the installed copy, switched atomically
MAX_TARBALL = 200 * 1024 * 1024  # 3.13.2's is 50 MB: a registry answering more is not answering the tarball
_DIST = "package/dist/"
_CHUNK = 1024 * 1024
_PUBLIC_PATH = b'__webpack_require__.p = "/";'  # webpack's runtime, in each entry bundle


class OhifError(Exception):
    """The tarball was refused or could not be had; nothing installed was changed."""


def dist_dir(data_dir: Path) -> Path:
    """Where the installed viewer is (a link; it may not exist)."""
    return data_dir / LINK


def installed(data_dir: Path) -> bool:
    return (dist_dir(data_dir) / "index.html").is_file()


def installed_version(data_dir: Path) -> str:
    """The version the link points at ('' if none): its target is named ``ohif-<version>-<random>``."""
    if not installed(data_dir):
        return ""
    name = os.readlink(dist_dir(data_dir)) if dist_dir(data_dir).is_symlink() else ""
    match = re.fullmatch(r"ohif-(.+)-[a-z0-9_]+", Path(name).name)
    return match.group(1) if match else ""


def download(url: str, into: IO[bytes], timeout: float = 60) -> None:
    """The tarball at ``url`` written to ``into`` (a file), at most ``MAX_TARBALL`` bytes."""
    request = urllib.request.Request(url, headers={"User-Agent": "lightbox-ohif-install"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 (a pinned https URL)
            total = 0
            while chunk := answer.read(_CHUNK):
                total += len(chunk)
                if total > MAX_TARBALL:
                    raise OhifError(f"{url}: more than {MAX_TARBALL // 2**20} MB, not the pinned tarball")
                into.write(chunk)
    except OSError as exc:  # URLError and timeouts are OSErrors
        raise OhifError(f"could not download {url}: {exc}") from None


def check_integrity(file: Path, integrity: str) -> None:
    """Refuse ``file`` unless its digest is npm's ``integrity`` (``sha512-<base64>``)."""
    algorithm, _, expected = integrity.partition("-")
    digest = hashlib.new(algorithm)
    with file.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    found = base64.b64encode(digest.digest()).decode()
    if found != expected:
        raise OhifError(f"integrity mismatch: expected {integrity}, the tarball is {algorithm}-{found}; refused")


def _unpack_dist(tarball: Path, into: Path) -> None:
    """Only ``package/dist/``'s regular files and folders, each checked to stay inside ``into``
    (by hand: Debian 12's Python 3.11.2 has no tarfile extraction filters)."""
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if not member.name.startswith(_DIST) or not (member.isfile() or member.isdir()):
                continue
            relative = member.name[len(_DIST) :]
            parts = Path(relative).parts
            if not relative or Path(relative).is_absolute() or ".." in parts:
                continue
            target = into.joinpath(*parts)
            if member.isdir():
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None  # a regular file
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
            target.chmod(0o644)  # no patient data: readable by the service's user whoever installed it
    for folder in into.rglob("*"):
        if folder.is_dir():
            folder.chmod(0o755)  # mkdir's mode went through the umask (077 in every command)
    if not (into / "index.html").is_file():
        raise OhifError(f"{tarball.name}: no {_DIST}index.html, not OHIF's app package")


def _edit(file: Path, change: Callable[[bytes], bytes]) -> bool:
    """Bytes, not text: a 17 MB bundle decoded to str took ~4 bytes a character, twice over."""
    data = file.read_bytes()
    changed = change(data)
    if changed != data:
        file.write_bytes(changed)
    return changed != data


def relocate(dist: Path, prefix: str = PREFIX) -> None:
    """Make a ``dist/`` built for ``/`` work under ``prefix``."""
    to = prefix.encode()
    if not _edit(
        dist / "index.html",
        lambda t: re.sub(rb'\b(href|src|content)="/(?!/)', rb'\1="' + to,
                         t.replace(b'window.PUBLIC_URL="/"', b'window.PUBLIC_URL="' + to + b'"')),
    ):  # fmt: skip
        raise OhifError("index.html has no absolute paths to move: not the OHIF build this Lightbox knows")
    moved = 0
    for file in dist.glob("*.js"):
        moved += _edit(file, lambda t: t.replace(_PUBLIC_PATH, b'__webpack_require__.p = "' + to + b'";'))
    if not moved:
        raise OhifError("no webpack public path in the bundles: not the OHIF build this Lightbox knows")
    for file in dist.glob("*.css"):
        _edit(file, lambda t: t.replace(b"url(/", b"url(" + to))
    manifest = dist / "manifest.json"
    if manifest.is_file():
        _edit(manifest, lambda t: re.sub(rb'":\s*"/', lambda m: m.group(0)[:-1] + to, t))


def install(data_dir: Path, tarball: Path | None = None, integrity: str = INTEGRITY, version: str = VERSION,
            url: str = TARBALL_URL) -> Path:  # fmt: skip
    """Install the viewer from ``tarball`` (else downloaded from ``url``) into ``data_dir``; the
    installed folder.  Refused (``OhifError``) before anything installed changes."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(data_dir)
    with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".ohif-download-", suffix=".tgz") as spool:
        if tarball is None:
            download(url, spool)
            spool.flush()
            tarball = Path(spool.name)
        check_integrity(tarball, integrity)
        folder = Path(tempfile.mkdtemp(dir=data_dir, prefix=f".ohif-{version}-"))
        try:
            folder.chmod(0o755)
            _unpack_dist(tarball, folder)
            relocate(folder)
            final = folder.with_name(folder.name[1:])  # ohif-<version>-<random>: now complete
            folder.rename(final)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    link = dist_dir(data_dir)
    previous = os.readlink(link) if link.is_symlink() else None
    swap = data_dir / f".{LINK}-link-{final.name}"
    swap.symlink_to(final.name)  # relative: the data folder may move
    os.replace(swap, link)  # the one step a server sees: old copy, then new
    if previous and previous != final.name:
        shutil.rmtree(data_dir / previous, ignore_errors=True)
    return final


def _remove_leftovers(data_dir: Path) -> None:
    """Half-made copies and links of an install that was killed."""
    for stale in data_dir.glob(".ohif-*"):
        if stale.is_symlink() or stale.is_file():
            stale.unlink()
        elif stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
