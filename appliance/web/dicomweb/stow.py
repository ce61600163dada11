"""STOW-RS (PS3.18 10.5): ``POST /dicom-web/studies[/{study}]`` of
``multipart/related; type="application/dicom"``, through the same ingest as C-STORE.

Each part streams from the request body (waitress has buffered it in the spool folder, see
``bodylimits``) into a ``BoundedSpool`` capped at ``max_instance_mb`` (a Part 10 part behind the
meta header Lightbox stores, so that ingest moves the file into storage), then ``archive.ingest``
validates, stores (fsync), indexes (committed) and only then is the part counted as stored:
the same validation, durability, refusals and duplicate policy as C-STORE.  The answer is
PS3.18's Store Instances Response: 200 all stored, 202 some failed, 409 none stored.

Storing needs an admin account (viewers read only), by session (with the CSRF header) or
HTTP Basic.  Each STOW-RS is audited per study, as C-STORE's receptions are.
"""

from __future__ import annotations

import io
import logging
import struct
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import bottle
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from appliance.archive import (
    Archive,
    BoundedSpool,
    Origin,
    Outcome,
    Spooled,
    audit,
    build_meta,
    encode_meta,
    part10_meta,
)
from appliance.config import Settings
from appliance.web.auth import Guard, client_address
from appliance.web.bodylimits import STOW_PATH
from appliance.web.dicomweb.errors import problem
from appliance.web.dicomweb.multipart_in import MalformedMultipart, MultipartReader

LOG = logging.getLogger("lightbox.web.stow")

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
META_WITHIN = 64 << 10  # a part's meta header is read from its first 64 KiB
INGESTS_AT_ONCE = 2  # per process: parts ingested while the next is read (files on disk, not in memory)
MAX_PARTS = 20_000  # the answer lists every part: ~300 bytes each, ~6 MB at most

# PS3.18 Table 10.5.3-1 (Store Instances Response failure reasons, as C-STORE's statuses).
OUT_OF_RESOURCES = 0xA700
MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
FAILURE_FOR_OUTCOME = {
    Outcome.REFUSED_UNREADABLE: CANNOT_UNDERSTAND,
    Outcome.REFUSED_INVALID: CANNOT_UNDERSTAND,
    Outcome.REFUSED_MISMATCH: MISMATCH,
    Outcome.OUT_OF_RESOURCES: OUT_OF_RESOURCES,
    Outcome.FAILED: PROCESSING_FAILURE,
}
_IDENTITY = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@dataclass(frozen=True)
class Identity:
    sop_class: str = ""
    sop_instance: str = ""
    study: str = ""
    series: str = ""


@dataclass(frozen=True)
class Door:
    """What the STOW-RS routes share: the archive, the instance size cap, the ingest threads."""

    archive: Archive
    max_instance: int
    pool: ThreadPoolExecutor


@dataclass(frozen=True)
class PartResult:
    identity: Identity
    failure: int | None = None  # a FailureReason, or None when stored
    reason: str = ""


def install(app: bottle.Bottle, archive: Archive, guard: Guard, settings: Settings) -> None:
    door = Door(archive, settings.max_instance_mb << 20, ThreadPoolExecutor(INGESTS_AT_ONCE, "stow-ingest"))

    @app.post(STOW_PATH)
    @guard("admin")
    def store_instances() -> bottle.HTTPResponse:
        return _stow(door, guard, None)

    @app.post(STOW_PATH + "/<study_uid>")
    @guard("admin")
    def store_study_instances(study_uid: str) -> bottle.HTTPResponse:
        return _stow(door, guard, study_uid)


def _stow(door: Door, guard: Guard, study_uid: str | None) -> bottle.HTTPResponse:
    request = bottle.request
    media = Message()
    media["content-type"] = request.get_header("Content-Type", "")
    part_type = (media.get_param("type") or DICOM) if media.get_content_type() == "multipart/related" else ""
    if not isinstance(part_type, str) or part_type.lower() != DICOM:
        raise problem(415, 'STOW-RS takes multipart/related; type="application/dicom"')
    boundary = media.get_param("boundary")
    length = request.content_length
    try:
        if not isinstance(boundary, str) or length < 0:
            raise MalformedMultipart("a boundary parameter and a Content-Length are needed")
        reader = MultipartReader(request.environ["wsgi.input"], boundary, length)
        results = _store_all(door, reader, study_uid, Origin("dicomweb", address=client_address()))
    except MalformedMultipart as exc:
        raise problem(400, f"malformed multipart/related body: {exc}") from None
    if not results:
        raise problem(400, "the multipart/related body has no parts")
    _audit(guard, results, study_uid)
    return _answer(results, study_uid)


def _store_all(door: Door, reader: MultipartReader, study_uid: str | None, origin: Origin) -> list[PartResult]:
    """Each part spooled in this thread while the parts before it are ingested by the door's
    pool (their fsyncs overlap); the results in the parts' order.  A body that turns out
    malformed after some parts were read ends with a failure for the rest."""
    results: list[PartResult] = []
    pending: deque[Future[PartResult]] = deque()
    try:
        for part in reader.parts():
            if len(results) + len(pending) >= MAX_PARTS:
                pending.append(_done(PartResult(Identity(), OUT_OF_RESOURCES, f"over {MAX_PARTS} parts: not read")))
                break
            pending.append(_receive(door, part.content_type, part.chunks, study_uid, origin))
            while len(pending) > INGESTS_AT_ONCE:
                results.append(pending.popleft().result())
    except MalformedMultipart as exc:
        results += [future.result() for future in pending]
        if not results:
            raise
        return results + [PartResult(Identity(), CANNOT_UNDERSTAND, f"malformed multipart: {exc}")]
    return results + [future.result() for future in pending]


def _done(result: PartResult) -> Future[PartResult]:
    future: Future[PartResult] = Future()
    future.set_result(result)
    return future


def _receive(
    door: Door, content_type: str, chunks: Iterator[memoryview], study_uid: str | None, origin: Origin
) -> Future[PartResult]:
    media = content_type.split(";")[0].strip().lower()
    if media not in ("", DICOM):  # not read: the reader skips it
        return _done(PartResult(Identity(), CANNOT_UNDERSTAND, f"a part of type {media!r}, not {DICOM}"))
    spool = BoundedSpool(door.archive.storage.spool, door.max_instance)
    try:
        spooled = _spool(spool, chunks, origin)
        if spool.error is not None:
            spool.discard()
            return _done(PartResult(Identity(), OUT_OF_RESOURCES, spool.error))
        return door.pool.submit(_ingest, door.archive, spool, spooled, origin, study_uid)
    except BaseException:
        spool.discard()
        raise


def _ingest(
    archive: Archive, spool: BoundedSpool, spooled: Spooled | None, origin: Origin, study_uid: str | None
) -> PartResult:
    try:
        result = archive.ingest(spool.path, origin, spooled, study_uid)
        identity = Identity(result.sop_class, result.sop_uid, result.study_uid, result.series_uid)
        if result.ok:
            return PartResult(identity)
        if not identity.sop_instance:  # refused before ingest knew it: what can be read of it, for the answer
            identity = _identity(spool.path)
        return PartResult(identity, FAILURE_FOR_OUTCOME[result.outcome], result.reason or result.outcome.value)
    finally:
        spool.discard()  # gone already if ingest moved it into storage


def _spool(spool: BoundedSpool, chunks: Iterator[memoryview], origin: Origin) -> Spooled | None:
    """Write a part into ``spool``.  A standard Part 10 part is written behind the meta header
    Lightbox will store (its dataset bytes as received), so ingest moves the file into storage
    rather than copying it; anything else is written as received, for ingest to judge."""
    head = b""
    for chunk in chunks:
        head += chunk  # a copy: the view is of the reader's buffer
        if len(head) >= META_WITHIN:
            break
    try:
        found = part10_meta(io.BytesIO(head))
    except (ValueError, struct.error):  # a meta header cut short or oversized: ingest will say
        found = None
    meta, offset = found if found is not None else ({}, len(head))
    sop_class, sop_instance, syntax = (
        meta.get(k, "") for k in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID")
    )
    standard = offset < len(head) and bool(sop_class and sop_instance and syntax)
    if standard:
        spool.write(encode_meta(build_meta(sop_class, sop_instance, syntax, origin, meta)))
        spool.write(head[offset:])
    else:
        spool.write(head)
    for chunk in chunks:
        spool.write(chunk)
    spool.finish()
    return Spooled(spool.digest.hexdigest(), spool.size) if standard and spool.error is None else None


def _identity(path: Path) -> Identity:
    """A refused part's UIDs, as far as they can be read."""
    try:
        # As ingest reads it (force), never a large value into memory (defer_size): a refused part may be junk.
        ds = dcmread(path, stop_before_pixels=True, specific_tags=list(_IDENTITY), force=True, defer_size=4096)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError):
        return Identity()
    values = [ds.get(keyword) for keyword in _IDENTITY]
    return Identity(*(str(v) if isinstance(v, str) else "" for v in values))


def _audit(guard: Guard, results: list[PartResult], study_uid: str | None) -> None:
    stored = Counter(r.identity.study for r in results if r.failure is None)
    for study, images in stored.items():
        guard.audit(audit.INSTANCES_TRANSFERRED, action="C", study_uid=study,
                    detail=f"{images} image{'s' if images != 1 else ''} received by STOW-RS")  # fmt: skip
    failed = len(results) - sum(stored.values())
    if failed:
        guard.audit(audit.INSTANCES_TRANSFERRED, action="C", study_uid=study_uid or "", outcome=audit.MINOR_FAILURE,
                    detail=f"STOW-RS: {failed} part{'s' if failed != 1 else ''} refused")  # fmt: skip


def _answer(results: list[PartResult], study_uid: str | None) -> bottle.HTTPResponse:
    """PS3.18 10.5.3: the Store Instances Response, as DICOM JSON."""
    base = f"{bottle.request.urlparts.scheme}://{bottle.request.urlparts.netloc}{STOW_PATH}"
    referenced = [_referenced(r.identity, base) for r in results if r.failure is None]
    failed = [_failed(r) for r in results if r.failure is not None]
    body: dict[str, object] = {}
    studies = {r.identity.study for r in results if r.failure is None}
    target = study_uid or (studies.pop() if len(studies) == 1 else None)
    if target and referenced:
        body["00081190"] = {"vr": "UR", "Value": [f"{base}/{target}"]}  # RetrieveURL of the study
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    status = 200 if not failed else 202 if referenced else 409
    for r in results:
        if r.failure is not None:
            LOG.info(
                "stow_refused sop=%s failure=0x%04X reason=%r", r.identity.sop_instance or "-", r.failure, r.reason
            )
    return bottle.HTTPResponse(bottle.json_dumps(body), status, **{"Content-Type": DICOM_JSON})


def _uid(value: str) -> dict[str, object]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _referenced(identity: Identity, base: str) -> dict[str, object]:
    url = f"{base}/{identity.study}/series/{identity.series}/instances/{identity.sop_instance}"
    return {
        "00081150": _uid(identity.sop_class),
        "00081155": _uid(identity.sop_instance),
        "00081190": {"vr": "UR", "Value": [url]},
    }


def _failed(result: PartResult) -> dict[str, object]:
    return {
        "00081150": _uid(result.identity.sop_class),
        "00081155": _uid(result.identity.sop_instance),
        "00081197": {"vr": "US", "Value": [result.failure]},
    }
