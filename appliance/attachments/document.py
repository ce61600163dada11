"""A PDF as an Encapsulated PDF instance (PS3.3 A.45.1), its bytes exactly as uploaded.

It must look like a PDF: "%PDF-" first and "%%EOF" within the last KiB (PDF 32000 7.5.5; a
truncated upload has none).  No PDF library runs on it: its title is only read where the
Info dictionary writes it as a plain literal string.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydicom.dataset import Dataset

from appliance.archive import Archive
from appliance.attachments import series
from appliance.made.storing import Payload

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
TAIL_BYTES = 1024
TITLE_SCAN = 256 << 10  # the Info dictionary is near the start or the end of the file
_TITLE = re.compile(rb"/Title\s*\(((?:[^()\\]|\\.){1,200})\)")


class NotAPdf(ValueError):
    """A file that claims to be a PDF but is not a whole one."""


def make(archive: Archive, study_uid: str, path: Path, filename: str) -> tuple[Dataset, Payload]:
    """The instance's attributes and its document, for ``storing.store``."""
    title = _check_and_title(path) or series.title_of(filename, "PDF document")
    ds = series.new_instance(archive, study_uid, ENCAPSULATED_PDF, "DOC", title)
    ds.ConversionType = "WSD"  # workstation: a document made elsewhere, brought in here
    ds.BurnedInAnnotation = "YES"  # a document shows the patient's data by nature
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = []
    ds.AcquisitionDateTime = ""
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = path.stat().st_size
    return series.finish(ds), Payload(0x00420011, path)


def _check_and_title(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(TITLE_SCAN)
        f.seek(max(0, size - TAIL_BYTES))
        tail = f.read()
        f.seek(max(0, size - TITLE_SCAN))
        end = f.read() if size > TITLE_SCAN else b""
    if not head.startswith(b"%PDF-") or b"%%EOF" not in tail:
        raise NotAPdf("not a PDF (or not a whole one): a PDF begins with %PDF- and ends with %%EOF")
    found = _TITLE.search(end) or _TITLE.search(head)
    if found is None:
        return ""
    raw = re.sub(rb"\\(.)", rb"\1", found.group(1))
    text = raw[2:].decode("utf-16-be", "replace") if raw.startswith(b"\xfe\xff") else raw.decode("latin-1")
    return "".join(c for c in text if c.isprintable()).strip()[: series.DESCRIPTION_CHARS]
