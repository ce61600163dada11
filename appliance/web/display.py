"""How values read for people: DICOM person names, dates and times, counts.

``webui/static/lightbox.js`` formats the same way for the rows it builds (``lightbox.person``,
``lightbox.date``, ``lightbox.plural``); a browser test holds the two to the same answers.
"""

from __future__ import annotations

import datetime as dt

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def person(value: str) -> str:
    """A DICOM PN as clinics file it: ``DOE^JOHN^PAUL^DR^JR`` -> ``DOE, DR JOHN PAUL, JR``.

    The family name first, then a comma and the other names (prefix, given, middle), then the
    suffix; the first component group that is not empty (alphabetic, else ideographic or
    phonetic).  Case as received: a name is never rewritten.
    """
    group = next((g for g in value.split("=") if g.strip("^ ")), "")
    parts = [p.strip() for p in group.split("^")] + [""] * 3
    family, given, middle, prefix = parts[:4]
    suffix = "^".join(p for p in parts[4:] if p)  # and any components past the five a PN has
    names = " ".join(p for p in (prefix, given, middle) if p)
    name = ", ".join(p for p in (family, names) if p)
    return ", ".join(p for p in (name, suffix) if p)


def dicom_date(value: str) -> str:
    """20261201 -> 1 Dec 2026: no day/month order to guess; anything else as it is."""
    if len(value) != 8 or not value.isdigit() or not 1 <= int(value[4:6]) <= 12:
        return value
    return f"{int(value[6:])} {MONTHS[int(value[4:6]) - 1]} {value[:4]}"


def dicom_time(value: str) -> str:
    """101500.123 -> 10:15; anything else as it is."""
    return f"{value[:2]}:{value[2:4]}" if len(value) >= 4 and value[:4].isdigit() else value


_zone: dt.tzinfo | None = None  # the clinic's time zone, set by web/site.py; None: the system's


def use_zone(zone: dt.tzinfo | None) -> None:
    """Show moments in ``zone`` from now on (the web server's process; None: the system's)."""
    global _zone
    _zone = zone


def local(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, _zone)


def today() -> dt.date:
    """The clinic's date now (the study list's "today" and "last 7 days")."""
    return dt.datetime.now(_zone).date()


def when(seconds: float | None) -> str:
    """A moment (seconds since the epoch) in the clinic's time: 1 Dec 2026 10:15:03; '—' for none."""
    if not seconds:
        return "—"
    t = local(seconds)
    return f"{t.day} {MONTHS[t.month - 1]} {t.year} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"


def plural(count: int, one: str, many: str | None = None) -> str:
    """1 image, 2 images; ``many`` for words that are not one + s (1 series, 2 series)."""
    return f"{count} {one if count == 1 else many or one + 's'}"
