"""What the picture and DICOMweb routes answer when they cannot: one mapping of the reasons
(a refusal of theirs, the imaging pipeline's errors, a stored file that cannot be read) to an
HTTP status, each route family answering in its own format (``answer``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bottle

from appliance.imaging import ImagingError, NoSuchFrame, TooLarge
from appliance.made.storing import NotStored
from appliance.web.auth import fail

Answer = Callable[[int, str], bottle.HTTPResponse]


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def refusing(handler: Callable[..., Any], answer: Answer) -> Callable[..., Any]:
    def run(**kwargs: Any) -> Any:
        try:
            return handler(**kwargs)
        except Refused as exc:
            return answer(exc.status, exc.reason)
        except TooLarge as exc:
            return answer(413, str(exc))
        except NoSuchFrame as exc:
            return answer(404, f"no such frame: {exc}")
        except ImagingError as exc:
            return answer(422, str(exc))
        except OSError as exc:  # the index names a file the storage lacks
            return answer(500, f"stored file unreadable ({exc.__class__.__name__})")

    run.__name__ = handler.__name__
    return run


def not_stored(exc: NotStored) -> bottle.HTTPResponse:
    """What a route that makes an instance (a presentation state, an attachment, a report)
    answers when ingest refused or failed it: 507 on a full disk, else 500."""
    return fail(507 if exc.disk_full else 500, f"not stored: {exc}")
