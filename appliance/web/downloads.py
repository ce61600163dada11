"""Downloads: a study or a series as a ZIP of DICOM media (IMAGES/... + DICOMDIR), streamed.

The ZIP is written as it is sent: zipfile in streaming mode (no seeking, sizes in data
descriptors), one stored file read at a time in 1 MiB pieces, so no file is held whole; what
grows with the study is its listing and zipfile's central directory (~2 KB per instance).
The DICOMDIR comes last (readers go by the central directory, not the order of entries): the
first image leaves at once, and the DICOMDIR lists exactly the files that made it into the ZIP.
"""

from __future__ import annotations

import logging
import time
import zipfile
from collections.abc import Iterator
from typing import IO, cast

import bottle
from bottle import response

from appliance.archive import CHUNK, Archive, MediaFile, audit, dicomdir
from appliance.web.auth import Guard, fail
from appliance.web.display import plural

LOG = logging.getLogger("lightbox.web.downloads")
ZIP64_FROM = 1 << 31  # entries this large need ZIP64 sizes, announced before their data


class Pipe:
    """The unseekable file zipfile writes into; the generator hands its bytes on."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        self.size = 0
        return data


def entry(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, time.localtime()[:6])
    info.compress_type = zipfile.ZIP_STORED  # image data hardly compresses; spare the CPU
    info.file_size = size
    return info


def zip_stream(archive: Archive, files: list[MediaFile]) -> Iterator[bytes]:
    pipe = Pipe()
    written: list[MediaFile] = []
    with zipfile.ZipFile(cast(IO[bytes], pipe), "w", allowZip64=True) as zf:  # write-only: all zipfile needs
        for f in files:
            try:
                source = open(archive.file_path(f.file_key), "rb")
            except FileNotFoundError:  # removed since the listing; the rest still goes out
                LOG.warning("download_file_missing sop_instance_uid=%s", f.sop_uid)
                continue
            with source, zf.open(entry(f.name, f.size), "w", force_zip64=f.size >= ZIP64_FROM) as out:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
                    yield pipe.take()
            written.append(f)
        with zf.open(entry("DICOMDIR", 0), "w") as out:
            for piece in dicomdir(written):
                out.write(piece)
                if pipe.size >= CHUNK:
                    yield pipe.take()
    yield pipe.take()  # the DICOMDIR's end and the central directory


def install(app: bottle.Bottle, archive: Archive, guard: Guard) -> None:
    def download(study_uid: str, series_uid: str | None, label: str) -> Iterator[bytes]:
        files = archive.media_files(study_uid, series_uid)
        if not files:
            raise fail(404, f"no such {label}")
        guard.audit(
            audit.EXPORT, study_uid=study_uid,
            detail=f"{label} ZIP, {plural(len(files), 'instance')}" + (f", series {series_uid}" if series_uid else ""),
        )  # fmt: skip
        response.content_type = "application/zip"
        response.set_header("Content-Disposition", f'attachment; filename="lightbox-{label}.zip"')
        return zip_stream(archive, files)

    @app.get("/api/studies/<study_uid>/archive.zip")
    @guard
    def study_zip(study_uid: str):
        return download(study_uid, None, "study")

    @app.get("/api/series/<series_uid>/archive.zip")
    @guard
    def series_zip(series_uid: str):
        study_uid = archive.study_of_series(series_uid)
        if study_uid is None:
            raise fail(404, "no such series")
        return download(study_uid, series_uid, "series")
