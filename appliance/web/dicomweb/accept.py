"""``Accept`` negotiation (RFC 9110 12.5.1) as DICOMweb needs it: media ranges with quality
values and parameters (``type=``, ``transfer-syntax=``) kept for the caller to read."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MediaRange:
    type: str  # "application/dicom+json", "multipart/related", "*/*", "image/*"
    params: dict[str, str] = field(default_factory=dict)  # lower-case names, unquoted values (not q)
    q: float = 1.0

    def covers(self, media_type: str) -> bool:
        main, _, sub = media_type.lower().partition("/")
        mine, _, my_sub = self.type.partition("/")
        return mine in ("*", main) and my_sub in ("*", sub)


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes (a quoted ``type="a, b"`` stays whole)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse(accept_header: str | None) -> list[MediaRange]:
    """The media ranges of an ``Accept`` header, best first (stable for equal q); none or an
    empty header is ``*/*``.  A malformed q counts as 0 (not acceptable)."""
    if not accept_header or not accept_header.strip():
        return [MediaRange("*/*")]
    ranges = []
    for part in _split(accept_header, ","):
        pieces = [p.strip() for p in _split(part, ";")]
        if not pieces[0]:
            continue
        params, q = {}, 1.0
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "q":
                try:
                    q = min(1.0, max(0.0, float(value)))
                except ValueError:
                    q = 0.0
            elif name:
                params[name] = value
        ranges.append(MediaRange(pieces[0].lower(), params, q))
    return sorted(ranges, key=lambda r: -r.q)


def choose(accept_header: str | None, offered: list[str]) -> str | None:
    """The offered media type the client prefers (the first offered among equals), or None
    (answer 406).  A more specific range decides over a wider one (``*/*;q=0`` then
    ``application/dicom+json`` still accepts it)."""
    ranges = parse(accept_header)
    best, best_q = None, 0.0
    for media_type in offered:
        matching = [r for r in ranges if r.covers(media_type)]
        if not matching:
            continue
        specific = max(matching, key=lambda r: (r.type.count("*") == 0, r.type != "*/*"))
        if specific.q > best_q:
            best, best_q = media_type, specific.q
    return best
