"""Server-side HTML from ``webui/templates`` (bottle SimpleTemplate: ``{{value}}`` is escaped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bottle

from appliance import __version__

WEBUI = Path(__file__).resolve().parent.parent / "webui"  # in a checkout, a link to the top-level webui/
TEMPLATES = WEBUI / "templates"
STATIC = WEBUI / "static"


def dicom_date(value: str) -> str:
    """20261201 -> 2026-12-01; anything else as it is."""
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def dicom_time(value: str) -> str:
    """101500.123 -> 10:15; anything else as it is."""
    return f"{value[:2]}:{value[2:4]}" if len(value) >= 4 and value[:4].isdigit() else value


def person(value: str) -> str:
    """DOE^JANE^^DR -> DOE JANE DR (the first, alphabetic, group only)."""
    return " ".join(part for part in value.split("=")[0].split("^") if part)


def render(template: str, **values: Any) -> str:
    return bottle.template(
        template, template_lookup=[str(TEMPLATES)], version=__version__, dicom_date=dicom_date,
        dicom_time=dicom_time, person=person, **values,
    )  # fmt: skip
