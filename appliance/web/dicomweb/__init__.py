"""DICOMweb (PS3.18) under ``/dicom-web``: STOW-RS (``stow``)."""

from __future__ import annotations

import bottle

from appliance.archive import Archive
from appliance.config import Settings
from appliance.web.auth import Guard
from appliance.web.dicomweb import stow

PREFIX = "/dicom-web"


def install(app: bottle.Bottle, archive: Archive, guard: Guard, settings: Settings) -> None:
    stow.install(app, archive, guard, settings)
