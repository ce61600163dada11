"""The C-FIND handler (Query/Retrieve Find, Patient Root and Study Root models).

The identifier is decoded with its Specific Character Set (and the usual repairs of
``charset.py``), matched by ``archive.find`` and answered one pending response per match.
Answers holding any non-ASCII text say ``ISO_IR 192`` (UTF-8).  Who may query at all is
decided at negotiation (``policy.py``).
"""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Any, Iterator

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pynetdicom import evt, sop_class

from appliance.archive import Archive
from appliance.archive.charset import declared_charsets, text
from appliance.archive.query import ITEM_KEYS, QueryError, TooManyMatches

LOG = logging.getLogger("lightbox.dicom")

# PS3.4 Table C.4-1, C-FIND response statuses.
SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
OUT_OF_RESOURCES = 0xA700  # "Refused: Out of Resources": more matches than find_max_results
IDENTIFIER_MISMATCH = 0xA900  # "Identifier does not match SOP Class"
UNABLE_TO_PROCESS = 0xC000

MODELS = {
    str(sop_class.PatientRootQueryRetrieveInformationModelFind): "PATIENT_ROOT",
    str(sop_class.StudyRootQueryRetrieveInformationModelFind): "STUDY_ROOT",
}
# Keys answered by the handler itself, not matched (PS3.4 C.4.1.1.3.2; C.6.1.1.5).
_ANSWERED_HERE = {"SpecificCharacterSet", "QueryRetrieveLevel", "RetrieveAETitle", "InstanceAvailability"}


class Request:
    """A decoded identifier: its level, the keys to match (keyword -> str, or a list of
    item mappings for a sequence) and every element asked for, in order."""

    def __init__(self, identifier: Dataset) -> None:
        charsets = declared_charsets(identifier)
        self.level = text(identifier, "QueryRetrieveLevel", charsets).upper()
        self.keys: dict[str, Any] = {}
        self.asked: list[tuple[BaseTag, str]] = []  # (tag, VR) of each requested element
        self.item_keys: dict[str, list[str]] = {}  # sequence keyword -> item keywords asked
        self.availability = "InstanceAvailability" in identifier
        for tag in sorted(identifier.keys()):
            if tag.element == 0:  # group length
                continue
            keyword = keyword_for_tag(tag)
            if keyword in _ANSWERED_HERE:
                continue
            vr = _vr(tag, identifier.get_item(tag).VR)
            self.asked.append((tag, vr))
            if vr == "SQ":
                items = list(identifier[tag].value or [])
                self.keys[keyword] = [{kw: text(item, kw, charsets) for kw in ITEM_KEYS if kw in item} for item in items[:1]]
                asked = [kw for t in (items[0].keys() if items else []) if (kw := keyword_for_tag(t))]
                self.item_keys[keyword] = asked or list(ITEM_KEYS)
            elif keyword:
                self.keys[keyword] = text(identifier, keyword, charsets)


def _vr(tag: BaseTag, raw_vr: str | None) -> str:
    if raw_vr:
        return raw_vr
    try:
        return dictionary_VR(tag)
    except KeyError:  # a private or unknown tag in implicit VR
        return "UN"


@cache
def _spec(keyword: str) -> tuple[BaseTag, str]:
    tag = BaseTag(tag_for_keyword(keyword))
    return tag, dictionary_VR(tag)


def response(request: Request, match: dict[str, Any], ae_title: str) -> Dataset:
    """The identifier of one pending response: every key asked (empty when unknown or below
    the level), the unique keys of the level and above, and the Retrieve AE Title."""
    ds = Dataset()
    ds.QueryRetrieveLevel = request.level
    ds.RetrieveAETitle = ae_title
    if request.availability:
        ds.InstanceAvailability = "ONLINE"  # every stored instance is on this box's disk
    for keyword, value in match.items():
        tag, vr = _spec(keyword)
        if vr == "SQ":
            ds.add_new(tag, vr, Sequence(_item(stored, request.item_keys[keyword]) for stored in value))
        else:
            ds.add_new(tag, vr, value)
    for tag, vr in request.asked:
        if tag not in ds:
            ds.add_new(tag, vr, Sequence() if vr == "SQ" else None)
    if any(isinstance(v, str) and not v.isascii() for v in _strings(match)):
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def _item(stored: dict[str, str], keywords: list[str]) -> Dataset:
    item = Dataset()
    for keyword in keywords:
        tag, vr = _spec(keyword)
        item.add_new(tag, vr, stored.get(keyword, ""))
    return item


def _strings(match: dict[str, Any]) -> Iterator[Any]:
    for value in match.values():
        if isinstance(value, list):
            for stored in value:
                yield from stored.values()
        else:
            yield value


def _failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    return ds


# Responses allowed to wait in pynetdicom's send queue.  Without a bound, a large answer is
# queued whole (memory grows with the result set) and, since pynetdicom's DUL reads nothing
# while it has something to send, a C-CANCEL is only seen after the last response.
_IN_FLIGHT = 8


def _wait_for_the_peer(event: evt.Event) -> None:
    queue = event.assoc.dul.to_provider_queue
    while queue.qsize() > _IN_FLIGHT and event.assoc.is_established and not event.is_cancelled:
        time.sleep(0.0005)


def handle_find(event: evt.Event, archive: Archive) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    started = time.perf_counter()
    calling_ae = event.assoc.requestor.ae_title
    model = MODELS[str(event.request.AffectedSOPClassUID)]
    outcome, count, level = "refused", 0, "?"
    try:
        try:
            request = Request(event.identifier)
            level = request.level or "?"
            matches = archive.find(model, request.level, request.keys)
        except QueryError as exc:
            yield _failure(IDENTIFIER_MISMATCH, str(exc)), None
            return
        except TooManyMatches as exc:
            yield _failure(OUT_OF_RESOURCES, str(exc)), None
            return
        except Exception as exc:  # an undecodable identifier
            LOG.warning("find_failed calling_ae=%r reason=%r", calling_ae, str(exc))
            yield _failure(UNABLE_TO_PROCESS, "cannot read the identifier"), None
            return
        outcome = "aborted"  # until the stream ends one way or the other
        try:
            for match in matches:
                if event.is_cancelled:
                    outcome = "cancelled"
                    yield CANCEL, None
                    return
                yield PENDING, response(request, match, event.assoc.ae.ae_title)
                count += 1
                _wait_for_the_peer(event)
        finally:
            matches.close()
        outcome = "ok"
        yield SUCCESS, None
    finally:
        LOG.info(
            "find model=%s level=%s calling_ae=%r outcome=%s results=%d ms=%.1f",
            model, level, calling_ae, outcome, count, (time.perf_counter() - started) * 1000,
        )  # fmt: skip
