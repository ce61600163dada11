"""The report text as people type it, checked before anything is made of it."""

from __future__ import annotations

import re

MAX_BYTES = 64 * 1024  # of UTF-8: pages of a report, and far below what a TEXT item (UT) may hold
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # text keeps tab and line breaks only


class TextError(ValueError):
    """Text that cannot be a report; the message says why."""


def check(text: object) -> str:
    """The text with its line breaks made CR LF (as DICOM text has them), trailing space cut."""
    if not isinstance(text, str):
        raise TextError("text: must be a string")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry
        raise TextError("text: not valid Unicode") from None
    if size > MAX_BYTES:
        raise TextError(f"text: {size} bytes; a report holds at most {MAX_BYTES // 1024} KB")
    bad = _CONTROL.search(text)
    if bad:
        raise TextError(f"text: control character U+{ord(bad.group()):04X} at position {bad.start()}")
    text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    if not text.strip():
        raise TextError("text: the report is empty")
    return text.replace("\n", "\r\n")
