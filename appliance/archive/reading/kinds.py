"""What an instance is for the people looking at it: an image, a video, a document, a report.

Decided from the index alone (SOP Class UID, transfer syntax, whether it has rows), so a study
page never opens a file to know how to show an instance.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.uid import UID, MPEGTransferSyntaxes

IMAGE = "image"
VIDEO = "video"  # encapsulated MPEG-2, H.264 or HEVC: played, never decoded frame by frame
PDF = "pdf"
DOCUMENT = "document"  # an encapsulated CDA, STL, OBJ or MTL: offered as a download
REPORT = "report"  # a structured report or key object selection: read as text
OTHER = "other"  # no pixels and nothing to read (presentation states, waveforms, raw data, ...)
MIXED = "mixed"  # a series holding more than one kind

VIDEO_SYNTAXES = frozenset(str(uid) for uid in MPEGTransferSyntaxes)
_ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
_ENCAPSULATED_DOCUMENTS = "1.2.840.10008.5.1.4.1.1.104."  # PDF .1, CDA .2, STL .3, OBJ .4, MTL .5
_STRUCTURED_REPORTS = "1.2.840.10008.5.1.4.1.1.88."  # every SR storage class, key object selection included


def instance_kind(sop_class_uid: str, transfer_syntax: str, has_pixels: bool) -> str:
    if sop_class_uid == _ENCAPSULATED_PDF:
        return PDF
    if sop_class_uid.startswith(_ENCAPSULATED_DOCUMENTS):
        return DOCUMENT
    if sop_class_uid.startswith(_STRUCTURED_REPORTS):
        return REPORT
    if transfer_syntax in VIDEO_SYNTAXES:
        return VIDEO
    return IMAGE if has_pixels else OTHER


def series_kind(kinds: Iterable[str]) -> str:
    """The one kind all instances share, or ``mixed``."""
    found = set(kinds)
    if len(found) == 1:
        return found.pop()
    return MIXED if found else OTHER


def sop_class_name(uid: str) -> str:
    """ "CT Image", "Comprehensive SR", ...: the class's name without "Storage", or the UID."""
    return (UID(uid).name.removesuffix(" Storage") if uid else "") or uid
