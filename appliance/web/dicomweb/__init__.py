"""DICOMweb under ``/dicom-web/`` (PS3.18): QIDO-RS (``qido.py``), WADO-RS and WADO-URI
(``wado.py``), STOW-RS (``stow.py``); the shared pieces are the
error answers (``errors.py``), ``Accept`` negotiation (``accept.py``), the DICOM JSON model
(``json.py``) and CORS for viewers served elsewhere (``cors.py``).

Login is the web session or HTTP Basic (``auth.is_api``): a script gets a 401 with a Basic
challenge and JSON errors, never the login page.  Every route needs a viewer at least.
"""

from __future__ import annotations

import bottle

from appliance.archive import Archive
from appliance.config import Settings
from appliance.web.auth import Guard

PREFIX = "/dicom-web"


def install(app: bottle.Bottle, archive: Archive, guard: Guard, settings: Settings) -> None:
    from appliance.web.dicomweb import cors, qido, stow, wado  # they import PREFIX from here

    qido.install(app, archive, guard, settings)
    wado.install(app, archive, guard, settings)
    stow.install(app, archive, guard, settings)
    cors.install(app, guard, settings)
