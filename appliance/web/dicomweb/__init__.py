"""DICOMweb under /dicom-web/ (PS3.18): each service is a sub-module with its ``install``."""

from __future__ import annotations

import bottle

from appliance.archive import Archive
from appliance.config import Settings
from appliance.web.auth import Guard
from appliance.web.dicomweb import wado

PREFIX = "/dicom-web"


def install(app: bottle.Bottle, archive: Archive, guard: Guard, settings: Settings) -> None:
    wado.install(app, archive, guard, settings)
