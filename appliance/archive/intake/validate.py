"""What a dataset must satisfy before it is stored."""

from __future__ import annotations

import re
from enum import Enum

from pydicom.uid import DeflatedExplicitVRLittleEndian

from appliance.archive.intake.charset import text
from appliance.archive.intake.header import Header

# PS3.5 9.1: digits and dots, no empty component, no leading zero, at most 64 characters.
_CONFORMANT_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
# What Lightbox accepts: no UID reaches a file path, so letters (hex UIDs), leading zeros and
# odd components are harmless and only flagged.  Refused: what could break a path, a log line
# or the wire encoding (a path separator, a control character, a multi-value backslash, non-ASCII).
_ACCEPTABLE_UID = re.compile(r"[\x20-\x2E\x30-\x5B\x5D-\x7E]+")  # printable ASCII but "/" and "\\"
MAX_UID_LENGTH = 64

# Deflate would let a small upload expand without bound (a 500 KB file past 1 GB).
REFUSED_SYNTAXES = {
    str(DeflatedExplicitVRLittleEndian),
    "1.2.840.10008.1.2.8.1",  # Deflated Image Frame Compression
}

REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


class Problem(Enum):
    """Why a dataset is refused; front doors map these to DIMSE or HTTP statuses."""

    INVALID = "invalid"  # a value is malformed (e.g. a UID)
    MISMATCH = "mismatch"  # the dataset does not match what it claims to be


class Refusal(ValueError):
    def __init__(self, problem: Problem, reason: str) -> None:
        super().__init__(reason)
        self.problem = problem
        self.reason = reason


def is_conformant_uid(value: object) -> bool:
    text = str(value) if value is not None else ""
    return 0 < len(text) <= MAX_UID_LENGTH and _CONFORMANT_UID.fullmatch(text) is not None


def is_acceptable_uid(value: object) -> bool:
    text = str(value) if value is not None else ""
    return 0 < len(text) <= MAX_UID_LENGTH and _ACCEPTABLE_UID.fullmatch(text) is not None


def check(header: Header) -> list[str]:
    """Raise Refusal naming the first thing wrong with ``header``; return the keywords of the
    UIDs accepted although not conformant (to be flagged in the index)."""
    if str(header.transfer_syntax) in REFUSED_SYNTAXES:
        raise Refusal(Problem.INVALID, "deflated transfer syntax is not accepted")
    if not is_conformant_uid(header.transfer_syntax):
        raise Refusal(Problem.INVALID, "transfer syntax is not a valid UID")
    ds = header.dataset
    values = {keyword: text(ds, keyword) for keyword in REQUIRED_UIDS}
    for keyword, value in values.items():
        if value == "":
            raise Refusal(Problem.MISMATCH, f"required attribute {keyword} missing")
        if not is_acceptable_uid(value):
            raise Refusal(
                Problem.INVALID,
                f"{keyword} is not a usable UID (over 64 characters, a separator or a control character)",
            )
    for meta_keyword, keyword in (
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
        ("MediaStorageSOPClassUID", "SOPClassUID"),
    ):
        claimed = header.meta.get(meta_keyword)
        if claimed and claimed != values[keyword]:
            raise Refusal(Problem.MISMATCH, f"{keyword} differs from {meta_keyword}")
    return [keyword for keyword, value in values.items() if not is_conformant_uid(value)]
