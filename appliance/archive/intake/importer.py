"""Import from files, folders, .zip files and CD/USB media with a DICOMDIR.

Every file goes through the same ``Ingest`` as C-STORE.  Files that are plainly not DICOM
(autorun.inf, viewers shipped on a CD) are skipped and counted, not refused.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread

from appliance.archive.intake.header import Origin
from appliance.archive.intake.ingest import Ingest, Outcome
from appliance.archive.storage import Storage

DICOMDIR = "DICOMDIR"


@dataclass
class ImportSummary:
    imported: int = 0
    already_present: int = 0
    skipped_not_dicom: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> count
    failed_sources: list[str] = field(default_factory=list)

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class Source:
    """One file to import: a path on disk, or a member of a zip file."""

    label: str
    path: Path | None = None
    archive: Path | None = None
    member: str | None = None


def discover(paths: list[Path]) -> Iterator[Source]:
    for path in paths:
        if path.is_dir():
            dicomdir = _find_dicomdir(path)
            if dicomdir is not None:
                yield from _from_dicomdir(dicomdir)
            else:
                for dirpath, dirnames, files in os.walk(path):
                    dirnames.sort()
                    for name in sorted(files):
                        yield from _from_file(Path(dirpath) / name)
        elif path.name.upper() == DICOMDIR:
            yield from _from_dicomdir(path)
        else:
            yield from _from_file(path)


def _from_file(path: Path) -> Iterator[Source]:
    if path.name.upper() == DICOMDIR:
        return
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir() and Path(info.filename).name.upper() != DICOMDIR:
                    yield Source(f"{path}:{info.filename}", archive=path, member=info.filename)
    else:
        yield Source(str(path), path=path)


def _find_dicomdir(folder: Path) -> Path | None:
    for entry in folder.iterdir():
        if entry.name.upper() == DICOMDIR and entry.is_file():
            return entry
    return None


def _from_dicomdir(dicomdir: Path) -> Iterator[Source]:
    """The files a DICOMDIR references, resolved case-insensitively (ISO 9660 media)."""
    root = dicomdir.parent
    ds = dcmread(dicomdir, force=True)
    seen: set[Path] = set()
    for record in ds.get("DirectoryRecordSequence", []):
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        # A file the DICOMDIR lists but the media lacks is still tried, so it is reported.
        path = _resolve(root, [str(p) for p in parts]) or root.joinpath(*map(str, parts))
        if path not in seen:
            seen.add(path)
            yield Source(str(path), path=path)


def _resolve(root: Path, parts: list[str]) -> Path | None:
    current = root
    for part in parts:
        exact = current / part
        if exact.exists():
            current = exact
            continue
        matches = [e for e in current.iterdir() if e.name.upper() == part.upper()] if current.is_dir() else []
        if not matches:
            return None
        current = matches[0]
    return current


def looks_like_dicom(path: Path) -> bool:
    """Part 10 preamble, or a raw dataset starting with a group 0002/0008 tag."""
    with open(path, "rb") as f:
        head = f.read(132)
    if head[128:132] == b"DICM":
        return True
    return head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08", b"\x00\x02") and len(head) >= 8


def run_import(
    ingest: Ingest,
    storage: Storage,
    paths: list[Path],
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    summary = ImportSummary()
    sources = list(discover(paths))
    for done, source in enumerate(sources, 1):
        _import_one(ingest, storage, source, summary)
        if progress:
            progress(done, len(sources))
    return summary


def _import_one(ingest: Ingest, storage: Storage, source: Source, summary: ImportSummary) -> None:
    temp: Path | None = None
    try:
        if source.archive is not None and source.member is not None:
            temp = storage.spool_path(".import")
            with zipfile.ZipFile(source.archive) as zf, zf.open(source.member) as member, open(temp, "wb") as out:
                shutil.copyfileobj(member, out, 1 << 20)
            path = temp
        elif source.path is not None:
            path = source.path
        else:
            raise ValueError(f"{source.label}: neither a file nor a zip member")
        if not looks_like_dicom(path):
            summary.skipped_not_dicom += 1
            return
        result = ingest(path, Origin("import"))
    except (OSError, zipfile.BadZipFile) as exc:
        summary.failed_sources.append(source.label)
        summary.rejected[f"cannot read: {exc}"] += 1
        return
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)
    if result.outcome is Outcome.STORED or result.outcome is Outcome.REPLACED:
        summary.imported += 1
    elif result.ok:
        summary.already_present += 1
    else:
        summary.rejected[result.reason or result.outcome.value] += 1
        summary.failed_sources.append(source.label)
