"""What a dataset must satisfy before it is stored."""

from __future__ import annotations

import re
from enum import Enum

from pydicom.uid import DeflatedExplicitVRLittleEndian

from appliance.archive.charset import text
from appliance.archive.header import Header

# Digits and dots, no empty component, at most 64 characters (PS3.5 9.1).  Leading zeros in
# a component are tolerated: real devices send them and they are harmless.
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
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


def is_valid_uid(value: object) -> bool:
    text = str(value) if value is not None else ""
    return 0 < len(text) <= MAX_UID_LENGTH and _UID.fullmatch(text) is not None


def check(header: Header) -> None:
    """Raise Refusal naming the first thing wrong with ``header``."""
    if str(header.transfer_syntax) in REFUSED_SYNTAXES:
        raise Refusal(Problem.INVALID, "deflated transfer syntax is not accepted")
    if not is_valid_uid(header.transfer_syntax):
        raise Refusal(Problem.INVALID, "transfer syntax is not a valid UID")
    ds = header.dataset
    values = {keyword: text(ds, keyword) for keyword in REQUIRED_UIDS}
    for keyword, value in values.items():
        if value == "":
            raise Refusal(Problem.MISMATCH, f"required attribute {keyword} missing")
        if not is_valid_uid(value):
            raise Refusal(Problem.INVALID, f"{keyword} is not a valid UID")
    for meta_keyword, keyword in (
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
        ("MediaStorageSOPClassUID", "SOPClassUID"),
    ):
        claimed = header.meta.get(meta_keyword)
        if claimed and claimed != values[keyword]:
            raise Refusal(Problem.MISMATCH, f"{keyword} differs from {meta_keyword}")
