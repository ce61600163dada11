"""What an uploaded file is, from its first bytes (never from its name alone)."""

from __future__ import annotations

from pathlib import Path

PDF, JPEG, IMAGE, VIDEO = "pdf", "jpeg", "image", "video"
SNIFF_BYTES = 64
ACCEPTED = "PDF, JPEG, PNG, BMP, MP4, MOV, AVI, MKV/WebM, MPEG"
# Containers ffmpeg reads that cameras and endoscopes write (ISO BMFF's "ftyp" at offset 4).
_VIDEO_MAGIC = (
    b"\x1a\x45\xdf\xa3",  # Matroska, WebM
    b"\x00\x00\x01\xba",  # MPEG program stream
    b"\x30\x26\xb2\x75",  # ASF, WMV
    b"FLV",
)


# What a file's name promises, for a clearer refusal when its bytes say otherwise.
NAMED = {"pdf": "a PDF", "jpg": "a JPEG", "jpeg": "a JPEG", "png": "a PNG", "bmp": "a BMP", "mp4": "an MP4",
         "mov": "a QuickTime video", "avi": "an AVI"}  # fmt: skip


class Unsupported(ValueError):
    """Not a kind of file Lightbox attaches (HTTP 415)."""


def sniff(path: Path, filename: str = "") -> str:
    """PDF, JPEG, IMAGE (PNG, BMP) or VIDEO; Unsupported for anything else."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"BM"):
        return IMAGE
    if head[4:8] == b"ftyp" or (head.startswith(b"RIFF") and head[8:12] == b"AVI "):
        return VIDEO
    if head.startswith(_VIDEO_MAGIC) or (head[:1] == b"\x47" and _transport_stream(path)):
        return VIDEO
    promised = NAMED.get(filename.rsplit(".", 1)[-1].lower() if "." in filename else "")
    if promised:
        raise Unsupported(f"named like {promised}, but its content is not one; not a file Lightbox can attach")
    raise Unsupported(f"not a file Lightbox can attach (it takes {ACCEPTED})")


def _transport_stream(path: Path) -> bool:
    """MPEG-TS: a sync byte every 188 bytes."""
    with open(path, "rb") as f:
        data = f.read(188 * 4)
    return len(data) == 188 * 4 and all(data[i] == 0x47 for i in range(0, len(data), 188))
