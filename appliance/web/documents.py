"""Encapsulated documents and structured reports, for reading.

    GET /api/instances/<sop_uid>/document   the encapsulated document as it was before DICOM
        wrapped it: a PDF shown in the browser (in a sandbox: no script, no plugins, no
        network), CDA, STL, OBJ and MTL as downloads; Range requests; ?download=1
    GET /instances/<sop_uid>/report         a structured report as a page of text
    GET /api/instances/<sop_uid>/report     its JSON twin: the content tree

Reading either is recorded in the audit trail as instances accessed, a download as an export.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

import bottle

from appliance.archive import Archive, InstanceEntry, audit, kinds
from appliance.documents import encapsulated, sr
from appliance.web import ranges
from appliance.web.auth import Guard, fail
from appliance.web.display import dicom_date, person
from appliance.web.templates import render

# A PDF is shown by the browser's own viewer; whatever the document holds runs in a sandbox
# (a unique origin: no script, no cookies of ours) and may fetch nothing.  Pages of this origin
# may embed it (OHIF's PDF viewport is an <object>); no other site may.
DOCUMENT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}


def install(app: bottle.Bottle, archive: Archive, guard: Guard) -> None:
    def instance_or_404(sop_uid: str, wanted: tuple[str, ...], what: str) -> InstanceEntry:
        entry = archive.instance(sop_uid)
        if entry is None or entry.kind not in wanted:
            raise fail(404, f"no such {what}")
        return entry

    def record(entry: InstanceEntry, event: str, what: str) -> None:
        guard.audit(event, study_uid=archive.study_of_series(entry.series_uid) or "",
                    detail=f"{what} (instance {entry.instance_number})")  # fmt: skip

    @app.get("/api/instances/<sop_uid>/document")
    @guard
    def document(sop_uid: str) -> bottle.HTTPResponse:
        entry = instance_or_404(sop_uid, (kinds.PDF, kinds.DOCUMENT), "document")
        path = archive.file_path(entry.file_key)
        try:
            found = encapsulated.locate(path)
        except encapsulated.DocumentError as exc:
            raise fail(422, str(exc)) from None
        download = bottle.request.query.get("download") == "1" or not found.inline
        name = f"document-{entry.instance_number or 0}.{found.extension}"
        headers = {
            "Content-Type": found.media_type,
            "Content-Disposition": f'{"attachment" if download else "inline"}; filename="{name}"',
            "Cache-Control": "private, max-age=300",
            **DOCUMENT_HEADERS,
        }
        answer = ranges.window_response(path, found.offset, found.length, headers, f'"{path.stem[:32]}"')
        if answer.status_code in (200, 206) and ranges.first_piece():
            event = audit.EXPORT if download else audit.INSTANCES_ACCESSED
            record(entry, event, f"{found.label} {'downloaded' if download else 'opened'}")
        return answer

    def report(sop_uid: str) -> tuple[InstanceEntry, sr.Report]:
        entry = instance_or_404(sop_uid, (kinds.REPORT,), "report")
        try:
            found = sr.read(archive.file_path(entry.file_key))
        except sr.ReportError as exc:
            raise fail(422, str(exc)) from None
        record(entry, audit.INSTANCES_ACCESSED, "structured report read")
        return entry, found

    @app.get("/instances/<sop_uid>/report")
    @guard
    def report_page(sop_uid: str) -> str:
        entry, found = report(sop_uid)
        series = archive.series_entry(entry.series_uid)
        return render("report.tpl", user=guard.user(), csrf=guard.csrf_token(), section="studies", report=found,
                      sop_uid=sop_uid, study=series.study if series else {}, patient=series.patient if series else {},
                      readable=Readable)  # fmt: skip

    @app.get("/api/instances/<sop_uid>/report")
    @guard
    def report_api(sop_uid: str) -> dict[str, Any]:
        return asdict(report(sop_uid)[1])


class Readable:
    """How the report page words values that DICOM stores in its own forms."""

    @staticmethod
    def value(item: sr.Item) -> str:
        formats = {"DATE": dicom_date, "TIME": _time, "DATETIME": Readable.datetime, "PNAME": person}
        if item.value_type == "NUM":
            return f"{item.value} {item.unit}".strip()
        return formats.get(item.value_type, str)(item.value)

    @staticmethod
    def datetime(value: str) -> str:
        """20010213184746.5+0100 -> 2001-02-13 18:47:46"""
        return f"{dicom_date(value[:8])} {_time(value[8:])}".strip()


def _time(value: str) -> str:
    """184746.123 -> 18:47:46 (hours, minutes and seconds, as far as given)."""
    digits = re.match(r"\d*", value).group()[:6]  # type: ignore[union-attr]
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2)) if len(digits) % 2 == 0 else value
