"""QIDO-RS (PS3.18 10.6): studies, series and instances searched through the same matching
as C-FIND (``archive.find_page``), answered as ``application/dicom+json`` or as
``multipart/related`` of ``application/dicom+xml`` (PS3.19 Native DICOM Model, ``xml.py``).

A query parameter names an attribute by keyword or by tag (``PatientID`` or ``00100020``), or
an item key of a sequence (``RequestAttributesSequence.ScheduledProcedureStepID``).  Values
follow C-FIND matching (PS3.4 C.2.2.2): wildcards, ranges, lists (``\\``; UIDs also ``,``),
names case- and accent-insensitive.  ``fuzzymatching=true`` makes a name without wildcards
match as a prefix of the name or of any of its words (``jur`` finds ``Müller^Jürgen``).  Attributes the index cannot
match are ignored and named in a ``Warning`` header, as PS3.18 10.6.1.3.1 asks.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Generator, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote

import bottle
from bottle import request, response
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from appliance.archive import ITEM_KEYS, QUERY_KEYS, QUERY_LEVELS, Archive, QueryError, audit
from appliance.config import Settings
from appliance.web.auth import Guard, client_address
from appliance.web.dicomweb import PREFIX, multipart
from appliance.web.dicomweb.errors import problem
from appliance.web.dicomweb.json import attribute, tag_key
from appliance.web.dicomweb.negotiate import dataset_type
from appliance.web.dicomweb.xml import DICOM_XML, to_xml

LOG = logging.getLogger("lightbox.web.dicomweb")
_MODEL = "STUDY_ROOT"
_LEVEL = {"studies": "STUDY", "series": "SERIES", "instances": "IMAGE"}
# PS3.18 Table 10.6.1-5: returned by default at each level.
DEFAULTS = {
    "STUDY": (
        "StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy", "ReferringPhysicianName",
        "TimezoneOffsetFromUTC", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
        "StudyID", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
    ),
    "SERIES": (
        "Modality", "SeriesDescription", "SeriesInstanceUID", "SeriesNumber", "NumberOfSeriesRelatedInstances",
        "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime", "RequestAttributesSequence",
    ),
    "IMAGE": ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "BitsAllocated", "NumberOfFrames"),
}  # fmt: skip
_BATCH = 50  # matches encoded per piece of the streamed answer
_UNCAPPED = 2**53  # find_max_results = 0: pages as long as asked (the answer streams: memory stays flat)
_INSTANCE_AVAILABILITY, _RETRIEVE_URL = 0x00080056, 0x00081190
_CUT = '299 lightbox "The number of results exceeded the limit or the maximum supported by the server. '
_CUT += 'Additional results can be requested."'


class Search:
    """One QIDO-RS request, parsed: the identifier for ``archive.find_page``, the paging, and
    the warnings to send back."""

    def __init__(self, level: str, scope_levels: tuple[str, ...], fixed: dict[str, str], max_results: int) -> None:
        self.identifier: dict[str, Any] = {}
        cap = max_results or _UNCAPPED
        self.limit, self.offset, self.fuzzy = cap, 0, False
        self.warnings: list[str] = []
        unmatched: list[str] = []
        included: set[str] = set()
        include_all = False
        visible = QUERY_LEVELS[: QUERY_LEVELS.index(level) + 1]
        try:
            pairs = parse_qsl(request.query_string, keep_blank_values=True, strict_parsing=False, errors="strict")
        except UnicodeDecodeError:
            raise problem(400, "the query string is not UTF-8") from None
        for name, value in pairs:
            if name == "limit":
                self.limit = min(_count(name, value), cap)
            elif name == "offset":
                self.offset = _count(name, value)
            elif name == "fuzzymatching":
                if value not in ("true", "false"):
                    raise problem(400, "fuzzymatching must be true or false")
                self.fuzzy = value == "true"
            elif name == "includefield":
                for field in (f.strip() for f in value.split(",")):
                    if field == "all":
                        include_all = True
                    elif field:
                        included.add(_keyword(field))
            else:
                self._match(name, value, visible, unmatched)
        for keyword, value in fixed.items():
            self.identifier[keyword] = value
        asked = [kw for lv in scope_levels for kw in DEFAULTS[lv]]
        asked += sorted(included) + (
            [kw for kw, key in QUERY_KEYS.items() if key.level in visible] if include_all else []
        )
        for keyword in asked:
            items = keyword in QUERY_KEYS and QUERY_KEYS[keyword].kind == "items"
            self.identifier.setdefault(keyword, [] if items else "")
        if unmatched:
            self.warnings.append(
                f'299 lightbox "The following attributes are not supported for matching: {", ".join(unmatched)}"'
            )

    def _match(self, name: str, value: str, visible: tuple[str, ...], unmatched: list[str]) -> None:
        path = name.split(".")
        if len(path) > 2:
            raise problem(400, f"only one level of sequence is searched: {name}")
        keyword = _keyword(path[0])
        key = QUERY_KEYS.get(keyword)
        if key is None or key.level not in visible or (len(path) == 2) != (key.kind == "items"):
            unmatched.append(name)
            return
        if key.kind == "items":
            item_keyword = _keyword(path[1])
            if item_keyword not in ITEM_KEYS:
                unmatched.append(name)
                return
            items = self.identifier.setdefault(keyword, [{}])
            items[0][item_keyword] = value
            return
        if key.kind == "uid":
            value = value.replace(",", "\\")
        previous = self.identifier.get(keyword)
        self.identifier[keyword] = f"{previous}\\{value}" if previous else value

    def fuzzy_names(self) -> None:
        """``fuzzymatching=true``: each name value without wildcards matches as a prefix of the
        name or of any of its words (``_fuzzy``)."""
        if not self.fuzzy:
            return
        for keyword, value in self.identifier.items():
            if QUERY_KEYS.get(keyword) is not None and QUERY_KEYS[keyword].kind == "name" and value:
                self.identifier[keyword] = "\\".join(_fuzzy(v) for v in value.split("\\"))


def _fuzzy(name: str) -> str:
    """A name without wildcards as a prefix of the name or of any of its components (folded,
    so components are split by ``^`` or spaces): ``jur`` finds ``Müller^Jürgen``."""
    if not name or "*" in name or "?" in name:
        return name
    return "\\".join((f"{name}*", f"*^{name}*", f"* {name}*"))


def _count(name: str, value: str) -> int:
    if not value.isdigit():
        raise problem(400, f"{name} must be a whole number, not {value!r}")
    return int(value)


def _keyword(field: str) -> str:
    """A keyword from a keyword or a tag as 8 hex digits; 400 for anything else."""
    if len(field) == 8 and all(c in "0123456789abcdefABCDEF" for c in field):
        keyword = keyword_for_tag(int(field, 16))
        if keyword:
            return keyword
        raise problem(400, f"unknown attribute tag {field}")
    if tag_for_keyword(field) is None:
        raise problem(400, f"unknown attribute {field!r}")
    return field


@functools.cache  # keywords the index keeps: a few dozen; pydicom's look-ups cost most of a row's time
def _json_key(keyword: str) -> tuple[str, str]:
    """A keyword's tag as a DICOM JSON key, and its VR."""
    vr = dictionary_VR(keyword).split(" or ")[0]  # "US or SS": the index keeps what it was given; the first will do
    return tag_key(tag_for_keyword(keyword) or 0), vr


def install(app: bottle.Bottle, archive: Archive, guard: Guard, settings: Settings) -> None:
    max_results = settings.find_max_results

    def search(resource: str, scope: tuple[str, ...], fixed: dict[str, str]) -> Any:
        level = _LEVEL[resource]
        media_type = dataset_type(request.get_header("Accept"))
        if media_type is None:
            raise problem(406, "QIDO-RS answers application/dicom+json or multipart/related of application/dicom+xml")
        query = Search(level, scope, fixed, max_results)
        query.fuzzy_names()
        trail = _Trail(archive, guard, level, fixed.get("StudyInstanceUID", ""))
        try:
            matches, more = archive.find_page(_MODEL, level, query.identifier, query.limit, query.offset)
        except QueryError as exc:
            trail.record(f"refused: {exc}", audit.MINOR_FAILURE)
            raise problem(400, str(exc)) from None
        if more:
            query.warnings.append(_CUT)
        for warning in query.warnings:
            response.add_header("Warning", warning)
        results = _results(matches, level, trail, more)
        if media_type == DICOM_XML:  # PS3.18 10.6.3.3.1: one Native DICOM Model document per result
            boundary = multipart.new_boundary()
            response.content_type = multipart.content_type(boundary, DICOM_XML)
            return _closing(multipart.stream(boundary, ((DICOM_XML, [to_xml(r)]) for r in results)), results)
        response.content_type = media_type
        return _closing(_json_array(results), results)

    def route(path: str, resource: str, scope: tuple[str, ...], *uids: str) -> None:
        def answer(**kwargs: str) -> Any:
            return search(resource, scope, {uid: kwargs[uid] for uid in uids})

        answer.__name__ = f"qido_{resource}_{len(uids)}"
        app.get(PREFIX + path)(guard(answer))

    route("/studies", "studies", ("STUDY",))
    route("/series", "series", ("STUDY", "SERIES"))
    route("/instances", "instances", ("STUDY", "SERIES", "IMAGE"))
    route("/studies/<StudyInstanceUID>/series", "series", ("SERIES",), "StudyInstanceUID")
    route("/studies/<StudyInstanceUID>/instances", "instances", ("SERIES", "IMAGE"), "StudyInstanceUID")
    route("/studies/<StudyInstanceUID>/series/<SeriesInstanceUID>/instances", "instances", ("IMAGE",),
          "StudyInstanceUID", "SeriesInstanceUID")  # fmt: skip


def _results(matches: Generator[dict[str, Any], None, None], level: str, trail: _Trail, more: bool
             ) -> Generator[dict[str, Any], None, None]:  # fmt: skip
    """The matches in the DICOM JSON model, one at a time: memory stays flat however many
    matches a page holds (rule 9); the search is audited once the answer is sent."""
    count, outcome = 0, "stopped"
    try:
        for match in matches:
            yield _result(match, level)
            count += 1
        outcome = "more follow" if more else "complete"
    finally:
        matches.close()  # a client gone mid-answer must not hold the read snapshot
        trail.record(f"{count} results, {outcome}", audit.SUCCESS if outcome != "stopped" else audit.MINOR_FAILURE)


def _closing(body: Iterator[bytes], results: Generator[dict[str, Any], None, None]) -> Iterator[bytes]:
    """``body``, closing ``results`` when it ends or the client goes (which audits the search)."""
    try:
        yield from body
    finally:
        results.close()


def _json_array(results: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """The JSON array, encoded a batch of results per piece."""
    yield b"["
    batch: list[str] = []
    count = 0
    for result in results:
        batch.append(bottle.json_dumps(result))
        count += 1
        if len(batch) == _BATCH:
            yield (("," if count > _BATCH else "") + ",".join(batch)).encode()
            batch = []
    if batch:
        yield (("," if count > len(batch) else "") + ",".join(batch)).encode()
    yield b"]"


def _result(row: dict[str, Any], level: str) -> dict[str, Any]:
    """One match in the DICOM JSON model, with InstanceAvailability and the RetrieveURL of its
    WADO-RS resource.  The URL is path-absolute: same-origin by construction, right behind a
    proxy, and not built from a Host header (dicomweb-client sends one without the port)."""
    answer = {}
    for keyword, value in row.items():
        key, vr = _json_key(keyword)
        answer[key] = attribute(vr, value)
    answer[tag_key(_INSTANCE_AVAILABILITY)] = {"vr": "CS", "Value": ["ONLINE"]}  # every file is on this box's disk
    url = f"{PREFIX}/studies/{quote(row['StudyInstanceUID'], safe='')}"
    if level in ("SERIES", "IMAGE"):
        url += f"/series/{quote(row['SeriesInstanceUID'], safe='')}"
    if level == "IMAGE":
        url += f"/instances/{quote(row['SOPInstanceUID'], safe='')}"
    answer[tag_key(_RETRIEVE_URL)] = {"vr": "UR", "Value": [url]}
    return dict(sorted(answer.items()))


class _Trail:
    """The request's Query event (PS3.15 A.5.3.8), like a C-FIND's: the keys searched, not
    their values (as for C-FIND, the trail names no patient it was not asked to); not waited
    for on disk, as a viewer asks often.  What it needs is taken from the request up front:
    the answer is audited after it is streamed."""

    def __init__(self, archive: Archive, guard: Guard, level: str, study_uid: str) -> None:
        self.archive, self.study_uid, self.started = archive, study_uid, time.perf_counter()
        self.user, self.address = guard.user().name, client_address()
        keys = sorted({name for name, _ in parse_qsl(request.query_string, keep_blank_values=True)})
        self.detail = f"QIDO-RS {level} {request.path}"[:300] + (f" by {','.join(keys)}"[:200] if keys else "")

    def record(self, outcome: str, code: int) -> None:
        """Never raises: it runs as the answer ends, when nothing can be said to the client."""
        took = (time.perf_counter() - self.started) * 1000
        try:
            self.archive.audit.record(
                audit.QUERY, self.user, self.address, outcome=code, study_uid=self.study_uid,
                detail=f"{self.detail}: {outcome}, {took:.0f} ms", durable=False,
            )  # fmt: skip
        except Exception as exc:
            LOG.warning("audit_not_recorded event=Query user=%r reason=%r", self.user, str(exc))
