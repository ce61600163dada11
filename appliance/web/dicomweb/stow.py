"""STOW-RS (PS3.18 10.5): ``POST /dicom-web/studies[/{study}]`` of
``multipart/related; type="application/dicom"``, through the same ingest as C-STORE.

Each part streams from the request body (waitress has buffered it in the spool folder, see
``bodylimits``) into a ``BoundedSpool`` capped at ``max_instance_mb`` (a Part 10 part behind the
meta header Lightbox stores, so that ingest moves the file into storage).  The parts spooled
while the previous batch was being ingested go to ``archive.ingest.batch`` together: it
validates, stores (fsync each file, each folder once), indexes them in one committed
transaction, and only then is a part counted as stored: the same validation, durability,
refusals and duplicate policy as C-STORE, with one commit per batch instead of one per part
(the answer waits for every part anyway).  The answer is PS3.18's Store Instances Response:
200 all stored, 202 some failed, 409 none stored.

Storing needs an admin account (viewers read only), by session (with the CSRF header) or
HTTP Basic.  Each STOW-RS is audited per study, as C-STORE's receptions are.
"""

from __future__ import annotations

import io
import logging
import struct
from collections import Counter
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
    IngestResult,
    Origin,
    Outcome,
    Received,
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
from appliance.web.dicomweb.negotiate import dataset_type
from appliance.web.dicomweb.xml import DICOM_XML, to_xml

LOG = logging.getLogger("lightbox.web.stow")

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
META_WITHIN = 64 << 10  # a part's meta header is read from its first 64 KiB
INGESTS_AT_ONCE = 2  # per process: batches ingested while the next parts are read
BATCH_PARTS = 32  # per request: parts spooled ahead and ingested together (files on disk, not in memory)
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
    answer_type = dataset_type(request.get_header("Accept"))
    if answer_type is None:  # before a byte of the body is stored
        raise problem(406, "STOW-RS answers application/dicom+json or application/dicom+xml")
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
    return _answer(results, study_uid, answer_type == DICOM_XML)


def _store_all(door: Door, reader: MultipartReader, study_uid: str | None, origin: Origin) -> list[PartResult]:
    """Each part spooled in this thread while the door's pool ingests the parts before it,
    in batches (``_Batches``); the results in the parts' order.  A body that turns out
    malformed after some parts were read ends with a failure for the rest."""
    results: list[Future[PartResult]] = []
    batches = _Batches(door, study_uid, origin)
    try:
        try:
            for part in reader.parts():
                if len(results) >= MAX_PARTS:
                    results.append(_done(PartResult(Identity(), OUT_OF_RESOURCES, f"over {MAX_PARTS} parts: not read")))
                    break
                results.append(_receive(door, part.content_type, part.chunks, batches))
        except MalformedMultipart as exc:
            batches.finish()
            if not results:
                raise
            return [future.result() for future in results] + [
                PartResult(Identity(), CANNOT_UNDERSTAND, f"malformed multipart: {exc}")
            ]
        batches.finish()
        return [future.result() for future in results]
    finally:
        batches.drop_waiting()  # what an unexpected error left unsubmitted


@dataclass(frozen=True)
class _Waiting:
    spool: BoundedSpool
    spooled: Spooled | None
    result: Future[PartResult]


class _Batches:
    """The spooled parts of one request, handed to the door's pool as one batch whenever the
    previous batch is done (group commit: as many parts as were read meanwhile), or when
    ``BATCH_PARTS`` wait.  One batch of a request at a time, so that the parts are judged in
    order, as C-STORE's would be (a repeated instance is a duplicate of the earlier one)."""

    def __init__(self, door: Door, study_uid: str | None, origin: Origin) -> None:
        self.door, self.study_uid, self.origin = door, study_uid, origin
        self.waiting: list[_Waiting] = []
        self.running: Future[None] | None = None

    def add(self, spool: BoundedSpool, spooled: Spooled | None) -> Future[PartResult]:
        waiting = _Waiting(spool, spooled, Future())
        self.waiting.append(waiting)
        if self.running is None or self.running.done() or len(self.waiting) >= BATCH_PARTS:
            self._submit()
        return waiting.result

    def finish(self) -> None:
        if self.waiting:
            self._submit()

    def _submit(self) -> None:
        if self.running is not None:
            self.running.result()  # the previous batch first
        batch, self.waiting = self.waiting, []
        self.running = self.door.pool.submit(_ingest, self.door.archive, batch, self.origin, self.study_uid)

    def drop_waiting(self) -> None:
        for waiting in self.waiting:
            waiting.spool.discard()
            waiting.result.cancel()
        self.waiting = []


def _done(result: PartResult) -> Future[PartResult]:
    future: Future[PartResult] = Future()
    future.set_result(result)
    return future


def _receive(door: Door, content_type: str, chunks: Iterator[memoryview], batches: _Batches) -> Future[PartResult]:
    media = content_type.split(";")[0].strip().lower()
    if media not in ("", DICOM):  # not read: the reader skips it
        return _done(PartResult(Identity(), CANNOT_UNDERSTAND, f"a part of type {media!r}, not {DICOM}"))
    spool = BoundedSpool(door.archive.storage.spool, door.max_instance)
    try:
        spooled = _spool(spool, chunks, batches.origin)
        if spool.error is not None:
            spool.discard()
            return _done(PartResult(Identity(), OUT_OF_RESOURCES, spool.error))
    except BaseException:
        spool.discard()
        raise
    return batches.add(spool, spooled)


def _ingest(archive: Archive, batch: list[_Waiting], origin: Origin, study_uid: str | None) -> None:
    """Ingest a batch (results only after its commit) and answer each part's future."""
    try:
        results = archive.ingest.batch([Received(w.spool.path, origin, w.spooled, study_uid) for w in batch])
        for waiting, result in zip(batch, results, strict=True):
            waiting.result.set_result(_part_result(result, waiting.spool.path))
    except BaseException as exc:
        for waiting in batch:
            if not waiting.result.done():
                waiting.result.set_exception(exc)
    finally:
        for waiting in batch:
            waiting.spool.discard()  # gone already if ingest moved it into storage


def _part_result(result: IngestResult, path: Path) -> PartResult:
    identity = Identity(result.sop_class, result.sop_uid, result.study_uid, result.series_uid)
    if result.ok:
        return PartResult(identity)
    if not identity.sop_instance:  # refused before ingest knew it: what can be read of it, for the answer
        identity = _identity(path)
    return PartResult(identity, FAILURE_FOR_OUTCOME[result.outcome], result.reason or result.outcome.value)


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


def _answer(results: list[PartResult], study_uid: str | None, as_xml: bool) -> bottle.HTTPResponse:
    """PS3.18 10.5.3: the Store Instances Response, as DICOM JSON or a Native DICOM Model
    document.  No WarningReason: what is stored is the dataset as received (Lightbox writes its
    own meta header, which is not part of the instance); nothing is coerced."""
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
    if as_xml:
        return bottle.HTTPResponse(to_xml(body), status, **{"Content-Type": DICOM_XML})
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
