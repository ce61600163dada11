"""The OHIF viewer under ``/ohif/``, on the same origin and behind the same login as ``/dicom-web/``.

The files are those ``lightbox ohif install`` put in the data folder (``appliance.ohif``); this
module adds the ``app-config.js`` that points OHIF at this server, answers deep links
(``/ohif/viewer?StudyInstanceUIDs=...``) with index.html, and gives OHIF the Content-Security-Policy
it needs (WebAssembly codecs, workers from blob: URLs) on ``/ohif/`` only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import bottle

from appliance import ohif
from appliance.archive import Archive
from appliance.web.auth import Guard
from appliance.web.templates import render

DICOMWEB = "/dicom-web"
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:; worker-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self' data: blob:; media-src 'self' blob:; object-src 'self' blob:; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)  # inline: index.html sets window.PUBLIC_URL; eval: the codecs' emscripten glue (embind) makes functions;
# object: the PDF viewport shows the document (a blob: URL) in an <object>
HASHED = re.compile(r"(^|[./])[0-9a-f]{16}\.")  # webpack's content hash in a file name: never changes
IMMUTABLE = "private, max-age=31536000, immutable"
MEDIA_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript"}

# The data source: this origin's DICOMweb, in the terms of OHIF's own configurations; app-config.js
# adds the roots, absolute URLs made from the page's origin as in those configurations.
DATA_SOURCE = {
    "friendlyName": "Lightbox",
    "name": "lightbox",
    "qidoSupportsIncludeField": True,
    "supportsFuzzyMatching": True,
    "supportsWildcard": True,
    "supportsReject": False,
    "imageRendering": "wadors",
    "thumbnailRendering": "wadors",
    "enableStudyLazyLoad": True,
    "staticWado": False,
    "singlepart": "bulkdata,video,pdf",
    "omitQuotationForMultipartRequest": True,
    "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
}
CONFIG = {
    "routerBasename": ohif.PREFIX.rstrip("/"),
    "extensions": [],
    "modes": [],
    "showStudyList": True,
    "maxNumberOfWebWorkers": 3,
    "showWarningMessageForCrossOrigin": False,
    "showCPUFallbackMessage": True,
    "showLoadingIndicator": True,
    "investigationalUseDialog": {"option": "never"},
    "maxNumRequests": {"interaction": 20, "thumbnail": 4, "prefetch": 6},  # the server has 8 threads, not a CDN
    "defaultDataSourceName": "lightbox",
}


def app_config() -> str:
    """OHIF's ``app-config.js``: its settings, with the DICOMweb data source at this page's origin."""
    config = {**CONFIG, "dataSources": [{
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "lightbox",
        "configuration": DATA_SOURCE,
    }]}  # fmt: skip
    return (
        "// Made by Lightbox (appliance/web/ohif.py): OHIF reads this server's DICOMweb.\n"
        f"window.config = {json.dumps(config, indent=2)};\n"
        f'const root = window.location.origin + "{DICOMWEB}";\n'
        "for (const source of window.config.dataSources) {\n"
        "  Object.assign(source.configuration, {qidoRoot: root, wadoRoot: root, wadoUriRoot: root});\n"
        "}\n"
    )


def install(app: bottle.Bottle, archive: Archive, guard: Guard) -> None:
    data_dir = archive.data_dir

    def with_csp(answer: bottle.HTTPResponse) -> bottle.HTTPResponse:
        answer.set_header("Content-Security-Policy", CSP)
        return answer

    @app.get(ohif.PREFIX.rstrip("/"))  # OHIF's router takes /ohif as its home too
    @app.get(ohif.PREFIX)
    @app.get(ohif.PREFIX + "<path:path>")
    @guard
    def ohif_file(path: str = ""):
        if not ohif.installed(data_dir):
            page = render("ohif_missing.tpl", user=guard.user(), csrf=guard.csrf_token(), section="",
                          version=ohif.VERSION)  # fmt: skip
            return bottle.HTTPResponse(page, 404)
        if path == "app-config.js":
            return with_csp(bottle.HTTPResponse(app_config(), 200, **{
                "Content-Type": "text/javascript; charset=UTF-8", "Cache-Control": "no-cache"}))  # fmt: skip
        root = ohif.dist_dir(data_dir).resolve()
        file = (root / path).resolve() if path else root
        if not file.is_file() or root not in file.parents:
            if "." in Path(path).name:
                return bottle.HTTPResponse("no such file", 404, **{"Content-Type": "text/plain; charset=UTF-8"})
            path = "index.html"  # a deep link of OHIF's router: its page, which finds the route
        media: str | bool = MEDIA_TYPES.get(Path(path).suffix, True)  # True: guessed from the name
        answer = bottle.static_file(path, root=str(root), mimetype=media)
        answer.set_header("Cache-Control", IMMUTABLE if HASHED.search(Path(path).name) else "no-cache")
        return with_csp(answer)
