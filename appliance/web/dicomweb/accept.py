"""Accept negotiation (RFC 9110 12.5.1) with the parameters DICOMweb adds: ``type`` of a
multipart/related range and ``transfer-syntax``."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_RANGES = 64  # a longer header is cut: bounded work per request (DESIGN rule 9)


@dataclass(frozen=True)
class MediaRange:
    type: str  # lower case, e.g. "multipart/related", "image/*", "*/*"
    params: dict[str, str] = field(default_factory=dict)  # names lower case, quotes removed
    q: float = 1.0

    def matches(self, media_type: str) -> bool:
        """Whether this range covers the concrete ``media_type``."""
        return covers(self.type, media_type)


def covers(pattern: str, media_type: str) -> bool:
    kind, _, sub = pattern.partition("/")
    their_kind, _, their_sub = media_type.lower().partition("/")
    return kind == "*" or (kind == their_kind and sub in ("*", their_sub))


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse(accept_header: str | None) -> list[MediaRange]:
    """The ranges of an Accept header, most preferred first (by q, then as written); an absent
    or empty header is ``*/*``.  Ranges with q=0 are dropped."""
    if not accept_header or not accept_header.strip():
        return [MediaRange("*/*")]
    ranges: list[MediaRange] = []
    for item in _split(accept_header, ",")[:MAX_RANGES]:
        pieces = _split(item, ";")
        media_type = pieces[0].strip().lower()
        if not media_type:
            continue
        if "/" not in media_type:
            media_type = "*/*" if media_type == "*" else media_type + "/*"
        params: dict[str, str] = {}
        q = 1.0
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"').strip()
            if name == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
            elif name:
                params[name] = value
        if q > 0:
            ranges.append(MediaRange(media_type, params, q))
    return sorted(ranges, key=lambda r: -r.q)  # sorted() is stable: ties keep their order


def choose(accept_header: str | None, offered: list[str]) -> str | None:
    """The offered media type the client prefers, or None (answer 406)."""
    for wanted in parse(accept_header):
        for media_type in offered:
            if wanted.matches(media_type):
                return media_type
    return None
