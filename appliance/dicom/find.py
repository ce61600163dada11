"""The C-FIND service (Query/Retrieve Find, Patient Root and Study Root models).

The identifier is decoded with its Specific Character Set (and the usual repairs of the
archive's ``charset``), matched by ``archive.find`` and answered one pending response per
match, encoded straight from the index row (``encoding.py``).  Answers holding any non-ASCII
text say ``ISO_IR 192`` (UTF-8).  Who may query at all is decided at negotiation
(``policy.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from appliance.archive import ITEM_KEYS, QueryError, TooManyMatches, charset
from appliance.dicom import auditing, dimse
from appliance.dicom.context import Final, Request, ServiceContext
from appliance.dicom.encoding import FindResponseEncoder
from appliance.dicom.status import CANCEL, IDENTIFIER_MISMATCH, OUT_OF_RESOURCES, PENDING, SUCCESS, UNABLE_TO_PROCESS

LOG = logging.getLogger("lightbox.dicom")

_QUERY_RETRIEVE_LEVEL, _RETRIEVE_AE_TITLE, _INSTANCE_AVAILABILITY = 0x00080052, 0x00080054, 0x00080056

MODELS = {  # the abstract syntaxes of the service's row
    "1.2.840.10008.5.1.4.1.2.1.1": "PATIENT_ROOT",  # Patient Root Query/Retrieve Information Model - FIND
    "1.2.840.10008.5.1.4.1.2.2.1": "STUDY_ROOT",  # Study Root Query/Retrieve Information Model - FIND
}
# Keys answered by the service itself, not matched (PS3.4 C.4.1.1.3.2; C.6.1.1.5).
_ANSWERED_HERE = {"SpecificCharacterSet", "QueryRetrieveLevel", "RetrieveAETitle", "InstanceAvailability"}


class Query:
    """A decoded identifier: its level, the keys to match (keyword -> str, or a list of
    item mappings for a sequence: of the keywords of ``item_keys``) and every element asked
    for, in order."""

    def __init__(self, identifier: Dataset, item_keys: Mapping[str, str] = ITEM_KEYS) -> None:
        charsets = charset.declared_charsets(identifier)
        self.level = charset.text(identifier, "QueryRetrieveLevel", charsets).upper()
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
                self.keys[keyword] = [
                    {kw: charset.text(item, kw, charsets) for kw in item_keys if kw in item} for item in items[:1]
                ]
                asked = [kw for t in (items[0].keys() if items else []) if (kw := keyword_for_tag(t))]
                self.item_keys[keyword] = asked or list(item_keys)
            elif keyword:
                self.keys[keyword] = charset.text(identifier, keyword, charsets)


def _vr(tag: BaseTag, raw_vr: str | None) -> str:
    if raw_vr:
        return raw_vr
    try:
        return dictionary_VR(tag)
    except KeyError:  # a private or unknown tag in implicit VR
        return "UN"


def serve(context: ServiceContext, request: Request[Dataset]) -> Final:
    """Answer one C-FIND-RQ of the Query/Retrieve models (see ``answer``)."""
    model = MODELS[request.abstract_syntax]
    return answer(
        context, request, model, lambda: Query(request.dataset),
        lambda query: context.archive.find(model, query.level, query.keys),
        lambda query, match: _encoder(query, match, context.options.aet, request.explicit_vr),
    )  # fmt: skip


def answer(
    context: ServiceContext,
    request: Request[Dataset],
    model: str,
    decode: Callable[[], Query],
    search: Callable[[Query], Generator[dict[str, Any], None, None]],
    encoder_for: Callable[[Query, dict[str, Any]], FindResponseEncoder],
) -> Final:
    """Answer one C-FIND-RQ (of any information model, the worklist's too): a pending response
    per match of ``search``, streamed from the index cursor and batched into few sends, until
    the end or the peer's C-CANCEL."""
    started = time.perf_counter()
    outcome, count, level = "refused", 0, "?"
    try:
        try:
            query = decode()
            level = query.level or "?"
            matches = search(query)
        except QueryError as exc:
            return Final(IDENTIFIER_MISMATCH, str(exc))
        except TooManyMatches as exc:
            return Final(OUT_OF_RESOURCES, str(exc))
        except Exception as exc:  # an undecodable identifier
            LOG.warning("find_failed calling_ae=%r reason=%r", context.calling_ae, str(exc))
            return Final(UNABLE_TO_PROCESS, "cannot read the identifier")
        outcome = "aborted"  # until the stream ends one way or the other
        pending = dimse.response(request.command, PENDING, has_dataset=True)
        encoder: FindResponseEncoder | None = None
        try:
            for match in matches:
                if context.cancelled():
                    outcome = "cancelled"
                    return Final(CANCEL)
                if encoder is None:
                    encoder = encoder_for(query, match)
                context.respond(request.context_id, pending, encoder.encode(match), flush=False)
                count += 1
        finally:
            matches.close()
        outcome = "ok"
        return Final(SUCCESS)
    finally:
        LOG.info(
            "find model=%s level=%s calling_ae=%r outcome=%s results=%d ms=%.1f",
            model, level, context.calling_ae, outcome, count, (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        auditing.query(context.archive, context.calling_ae, context.origin.address, model, level, outcome, count)


def _encoder(query: Query, match: dict[str, Any], ae_title: str, explicit: bool) -> FindResponseEncoder:
    """Every key asked (empty when unknown or below the level), the unique keys of the level
    and above, the level itself and the Retrieve AE Title."""
    fixed = [(_QUERY_RETRIEVE_LEVEL, "CS", query.level), (_RETRIEVE_AE_TITLE, "AE", ae_title)]
    if query.availability:
        fixed.append((_INSTANCE_AVAILABILITY, "CS", "ONLINE"))  # every instance is on this box's disk
    asked = [(int(tag), vr) for tag, vr in query.asked]
    return FindResponseEncoder(fixed, asked, match.keys(), query.item_keys, explicit)
