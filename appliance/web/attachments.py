"""Files attached to a study over HTTP (the study page's drop zone and picker, and the API).

    POST /api/studies/<study_uid>/attachments?name=<file name>   the file itself as the body
        (any Content-Type); answers 201 {"sop_uid", "series_uid", "kind", "title", "how"}

Any logged-in user may attach (a viewer account too: a nurse adds a referral letter or a photo;
nothing already stored changes, and the audit trail names who did it).  The body may be as
large as the ``attach_max_mb`` setting: bodylimits answers 413 from the declared length (or
while de-chunking) before it is read, and buffers it in the data folder's spool.  A file of a
kind Lightbox does not take is a 415, a bad one (a .pdf that is no PDF, a picture too large to
decode) a 422: each with the reason, audited, and nothing stored.
"""

from __future__ import annotations

import shutil
import weakref
from pathlib import Path
from typing import Any

import bottle
from bottle import request

from appliance.archive import Archive, Origin, audit
from appliance.attachments.attach import Refused, attach
from appliance.imaging.ffmpeg import Ffmpeg
from appliance.made.storing import NotStored
from appliance.web.auth import Guard, client_address, fail
from appliance.web.refusals import not_stored

CHUNK = 1 << 20


def install(app: bottle.Bottle, archive: Archive, guard: Guard, ffmpeg: Path, max_bytes: int) -> None:
    converter = Ffmpeg(ffmpeg)
    weakref.finalize(converter, converter.terminate)  # at exit: a re-encode may have minutes left

    @app.post("/api/studies/<study_uid>/attachments")
    @guard
    def create(study_uid: str) -> dict[str, Any]:
        user = guard.user().name
        name = request.query.getunicode("name", "") or request.get_header("X-Filename", "") or "attachment"
        spooled = archive.storage.spool_path(".attach")
        try:
            with open(spooled, "wb") as out:
                shutil.copyfileobj(request.body, out, CHUNK)  # waitress's buffer, already bounded
            if spooled.stat().st_size == 0:
                raise Refused("the upload is empty", 400)
            origin = Origin("webui", address=client_address(), user=user)
            attached = attach(archive, study_uid, spooled, name, origin, converter, max_bytes)
        except LookupError:
            raise fail(404, "no such study") from None
        except Refused as exc:
            guard.audit(audit.INSTANCES_ACCESSED, action="C", study_uid=study_uid, outcome=4,
                        detail=f"attachment refused: {exc}"[:200])  # fmt: skip
            raise fail(exc.status, str(exc)) from None
        except NotStored as exc:
            raise not_stored(exc) from None
        finally:
            spooled.unlink(missing_ok=True)
        guard.audit(audit.INSTANCES_ACCESSED, action="C", study_uid=study_uid,
                    detail=f"{attached.kind} attached ({attached.how})")  # fmt: skip
        bottle.response.status = 201
        return {"sop_uid": attached.sop_uid, "series_uid": attached.series_uid, "kind": attached.kind,
                "title": attached.title, "how": attached.how}  # fmt: skip
