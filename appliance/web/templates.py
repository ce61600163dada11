"""Server-side HTML from ``webui/templates`` (bottle SimpleTemplate: ``{{value}}`` is escaped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bottle

from appliance import __version__
from appliance.web import display

WEBUI = Path(__file__).resolve().parent.parent / "webui"  # in a checkout, a link to the top-level webui/
TEMPLATES = WEBUI / "templates"
# One list for every render: bottle caches compiled templates under id(lookup), so a new list
# each time compiled the page again and kept every copy (~0.1 MB a page view, never freed).
LOOKUP = [str(TEMPLATES)]
STATIC = WEBUI / "static"
HELPERS = {name: getattr(display, name) for name in ("person", "dicom_date", "dicom_time", "when", "plural")}
PAGE: dict[str, Any] = {"clinic_name": ""}  # what every page shows; web/site.py keeps it current


def render(template: str, **values: Any) -> str:
    # A page may bring its own helper under the same name (the backup page's "never").
    return bottle.template(template, template_lookup=LOOKUP, **{"version": __version__, **HELPERS, **PAGE, **values})
