"""A study as a ZIP of de-identified instances (``appliance.deidentify``), streamed like the
plain download (``downloads.py``): one instance at a time, its pixel data copied in pieces.

No DICOMDIR (it would need the new headers of every file before the first leaves); a
DEIDENTIFIED.txt says how the files were made, which may show burned-in text, and what was left out.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from typing import IO, cast

from appliance.archive import Archive, MediaFile
from appliance.deidentify import METHOD, NotDeidentifiable, Plan, deidentified
from appliance.web.downloads import ZIP64_FROM, Pipe, entry

LOG = logging.getLogger("lightbox.web.anonymised")


def _notes(plan: Plan, burned_in: list[str], left: list[tuple[str, str]]) -> bytes:
    lines = [
        "These DICOM files were de-identified by Lightbox:",
        METHOD + ".",
        "Names, IDs and the other attributes of PS3.15 Table E.1-1 are removed or emptied; private",
        "attributes and overlays are removed; UIDs are replaced consistently across these files;",
        "dates are shifted back by the same number of days in every file; the birth date is removed.",
        "",
    ]
    if burned_in:
        lines += ["MAY CONTAIN BURNED-IN PATIENT DATA (text in the pixels cannot be removed here):"]
        lines += [f"  {name}" for name in burned_in] + [""]
    if left:
        lines += ["Left out:"] + [f"  {name}: {why}" for name, why in left] + [""]
    return "\n".join(lines).encode()


def anonymised_zip(archive: Archive, files: list[MediaFile], plan: Plan) -> Iterator[bytes]:
    pipe = Pipe()
    burned_in: list[str] = []
    left: list[tuple[str, str]] = []
    with zipfile.ZipFile(cast(IO[bytes], pipe), "w", allowZip64=True) as zf:
        for f in files:
            try:
                made, pieces = deidentified(archive.file_path(f.file_key), plan)
            except FileNotFoundError:  # removed since the listing; the rest still goes out
                LOG.warning("download_file_missing")
                continue
            except NotDeidentifiable as exc:
                left.append((f.name, str(exc)))
                continue
            except Exception as exc:  # a file pydicom cannot read: left out, said so
                LOG.warning("deidentify_failed error=%s", type(exc).__name__)
                left.append((f.name, "its header could not be read"))
                continue
            if made.burned_in:
                burned_in.append(f.name)
            with zf.open(entry(f.name, f.size), "w", force_zip64=f.size >= ZIP64_FROM) as out:
                for piece in pieces:
                    out.write(piece)
                    yield pipe.take()
        notes = _notes(plan, burned_in, left)
        with zf.open(entry("DEIDENTIFIED.txt", len(notes)), "w") as out:
            out.write(notes)
    yield pipe.take()  # the notes and the central directory
