"""WADO-RS and WADO-URI (PS3.18 10.4, 10.3, 9): stored instances, their metadata, frames, bulk
data and rendered pictures, under /dicom-web/.

    /studies/{s}[/series/{se}[/instances/{i}]]            multipart/related; type="application/dicom"
    .../metadata                                          application/dicom+json, or multipart/related
                                                          of application/dicom+xml (PS3.19)
    /studies/{s}/series/{se}/instances/{i}/frames/{list}  multipart/related: frames
    .../instances/{i}/bulkdata/{tag path}                 multipart/related; application/octet-stream
                                                          (or application/pdf, single part, with Range)
    .../rendered, .../frames/{list}/rendered              image/jpeg, image/png (video: its MP4)
    .../thumbnail, .../frames/{list}/thumbnail            image/jpeg
    /dicom-web/wado and /wado ?requestType=WADO&...       WADO-URI

Files leave as stored, byte for byte, when the client accepts their transfer syntax (an Accept
without ``transfer-syntax``, or ``transfer-syntax=*``, accepts the stored one), else decoded to
Explicit (or Implicit) VR Little Endian by the same code as a C-MOVE (``dicom/outgoing.py``),
every UID kept (DESIGN rule 8); a syntax we cannot give is 406.  Bodies are written as they
are sent, one stored file read at a time in pieces.

Audited as web downloads are: a retrieval of instances (here or by WADO-URI) as an export, a
metadata read and a document opened as instances accessed.  Frames, pictures and thumbnails are
not (a viewer asks for hundreds; its metadata request already recorded the viewing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import bottle
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.uid import UID

from appliance import imaging
from appliance.archive import Archive, InstanceEntry, InstanceFile, Origin, audit, build_meta, encode_meta, kinds
from appliance.config import Settings
from appliance.dicom.outgoing import CannotSend, reencoded
from appliance.documents import encapsulated
from appliance.imaging import ImagingError, ImagingOptions, Thumbnails, TooLarge
from appliance.imaging.source import FrameSource, stored_header
from appliance.web import ranges
from appliance.web.auth import Guard
from appliance.web.dicomweb import multipart
from appliance.web.dicomweb.accept import MediaRange, choose, parse
from appliance.web.dicomweb.errors import problem
from appliance.web.dicomweb.metadata import PIXEL_TAGS, PREFIX, InstanceMetadata, bulk_base
from appliance.web.dicomweb.negotiate import (
    OCTETS,
    Outgoing,
    accept_header,
    choose_multipart,
    choose_multipart_or_plain,
    dataset_type,
    frame_choice,
    multipart_of,
    outgoing_as,
)
from appliance.web.dicomweb.rendering import MAX_SIDE, render_params
from appliance.web.dicomweb.xml import DICOM_XML
from appliance.web.documents import DOCUMENT_HEADERS
from appliance.web.refusals import Refused, refusing

LOG = logging.getLogger("lightbox.web.dicomweb")
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
DOCUMENT = "00420011"
MAX_FRAMES_LISTED = 10_000  # frame numbers in one request (rule 9)
PICTURES = {"image/jpeg": "jpeg", "image/png": "png"}


def install(app: bottle.Bottle, archive: Archive, guard: Guard, settings: Settings) -> None:
    options = ImagingOptions.from_settings(settings)
    thumbnails = Thumbnails(archive.data_dir / "cache" / "thumbnails", options)
    metadata_store = InstanceMetadata(archive.data_dir)
    metadata_store.open()

    def route(path: str, handler: Callable[..., Any], prefixes: tuple[str, ...] = (PREFIX,)) -> None:
        for prefix in prefixes:
            app.route(prefix + path, "GET", guard(refusing(handler, _refusal)))

    # -- lookups ---------------------------------------------------------------------------

    def files_of(study: str, series: str | None = None, sop: str | None = None) -> list[InstanceFile]:
        keys: dict[str, Sequence[str]] = {"StudyInstanceUID": [study]}
        if series:
            keys["SeriesInstanceUID"] = [series]
        if sop:
            keys["SOPInstanceUID"] = [sop]
        level = "IMAGE" if sop else "SERIES" if series else "STUDY"
        found = archive.instances_for_retrieve(level, keys)
        if not found:
            raise Refused(404, f"no such {level.lower().replace('image', 'instance')}")
        return found

    def entry_of(study: str, series: str, sop: str) -> InstanceEntry:
        entry = archive.instance(sop)
        if entry is None or entry.series_uid != series or archive.study_of_series(series) != study:
            raise Refused(404, "no such instance")
        return entry

    def path_of(item: InstanceFile | InstanceEntry) -> Path:
        return archive.file_path(item.file_key)

    def record(event: str, study: str, detail: str) -> None:
        guard.audit(event, study_uid=study, detail=f"DICOMweb: {detail}")

    # -- instances -------------------------------------------------------------------------

    def retrieve(study: str, series: str | None = None, sop: str | None = None) -> bottle.HTTPResponse:
        files = files_of(study, series, sop)
        ranges_ = [r for r in parse(accept_header()) if multipart_of(r, DICOM)]
        outgoing = [outgoing_as(item, ranges_) for item in files]
        refused = [o for o in outgoing if o is None]
        if refused:
            raise Refused(406, f"{len(refused)} of {len(files)} instances cannot be sent in an accepted syntax")
        what = "instance" if sop else "series" if series else "study"
        record(audit.EXPORT, study, f"{what} retrieved, {len(files)} instance{'s' if len(files) != 1 else ''}")
        boundary = multipart.new_boundary()
        parts = ((f"{DICOM}; transfer-syntax={o.syntax}", instance_bytes(o)) for o in outgoing if o is not None)
        headers = {"Content-Type": multipart.content_type(boundary, DICOM)}
        return bottle.HTTPResponse(multipart.stream(boundary, parts), 200, headers)

    def instance_bytes(out: Outgoing) -> Iterator[bytes]:
        """The Part 10 file as it leaves; nothing when it cannot (logged: the headers are sent)."""
        path = path_of(out.item)
        if out.as_stored:
            try:
                yield from multipart.file_pieces(path, 0, out.item.size)
            except FileNotFoundError:
                LOG.warning("wado_file_missing sop_instance_uid=%s", out.item.sop_uid)
            return
        try:
            yield transcoded(out, path)
        except (CannotSend, TooLarge, OSError) as exc:
            LOG.warning("wado_transcode_failed sop_instance_uid=%s reason=%s", out.item.sop_uid, exc)

    def transcoded(out: Outgoing, path: Path) -> bytes:
        try:
            with FrameSource(path, options.max_decode_bytes):
                pass  # an image over the decode cap is refused (TooLarge) before it is read whole
        except TooLarge:
            raise
        except ImagingError:  # not an image
            if out.item.size > options.max_decode_bytes:  # no pixels to judge by: the file's size
                raise TooLarge("file over the decode cap") from None
        with imaging.DECODING:
            body = reencoded(path, out.item.transfer_syntax, out.syntax)
        meta = build_meta(out.item.sop_class_uid, out.item.sop_uid, out.syntax, Origin("web"))
        return encode_meta(meta) + body

    def study_files(study: str) -> bottle.HTTPResponse:
        return retrieve(study)

    def series_files(study: str, series: str) -> bottle.HTTPResponse:
        return retrieve(study, series)

    def instance_file(study: str, series: str, sop: str) -> bottle.HTTPResponse:
        return retrieve(study, series, sop)

    # -- metadata --------------------------------------------------------------------------

    def metadata(study: str, series: str | None = None, sop: str | None = None) -> bottle.HTTPResponse:
        media_type = dataset_type(accept_header())
        if media_type is None:
            raise Refused(
                406, "metadata is served as application/dicom+json or multipart/related of application/dicom+xml"
            )
        files = files_of(study, series, sop)
        record(audit.INSTANCES_ACCESSED, study, f"metadata of {len(files)} instance{'s' if len(files) != 1 else ''}")
        script_name = bottle.request.script_name

        def metadata_of(item: InstanceFile, as_xml: bool) -> bytes:
            parent = series or _series_of(archive, item.sop_uid)
            made = metadata_store.xml if as_xml else metadata_store.json
            return made(path_of(item), item.sop_uid, bulk_base(script_name, study, parent, item.sop_uid))

        def documents(as_xml: bool) -> Iterator[bytes]:
            for item in files:
                try:
                    yield metadata_of(item, as_xml)
                except (OSError, ImagingError, ValueError) as exc:
                    LOG.warning("wado_metadata_unreadable sop_instance_uid=%s reason=%s", item.sop_uid, exc)

        if media_type == DICOM_XML:  # one Native DICOM Model document per instance (PS3.18 10.4.3)
            boundary = multipart.new_boundary()
            parts = ((DICOM_XML, [text]) for text in documents(as_xml=True))
            return bottle.HTTPResponse(multipart.stream(boundary, parts), 200,
                                       {"Content-Type": multipart.content_type(boundary, DICOM_XML)})  # fmt: skip

        def array() -> Iterator[bytes]:
            separator = b"["
            for text in documents(as_xml=False):
                yield separator + text
                separator = b","
            yield b"[]" if separator == b"[" else b"]"

        return bottle.HTTPResponse(array(), 200, {"Content-Type": DICOM_JSON})

    def study_metadata(study: str) -> bottle.HTTPResponse:
        return metadata(study)

    def series_metadata(study: str, series: str) -> bottle.HTTPResponse:
        return metadata(study, series)

    def instance_metadata(study: str, series: str, sop: str) -> bottle.HTTPResponse:
        return metadata(study, series, sop)

    # -- frames and bulk data --------------------------------------------------------------

    def frames(study: str, series: str, sop: str, numbers: str) -> bottle.HTTPResponse:
        entry = entry_of(study, series, sop)
        wanted = _frame_list(numbers)
        if entry.rows is None:
            raise Refused(404, "this instance has no pixel data")
        missing = [n for n in wanted if n > entry.frames]
        if missing:
            raise Refused(404, f"no frame {missing[0]}: the instance has {entry.frames}")
        return frames_answer(entry, wanted)

    def frames_answer(entry: InstanceEntry, wanted: list[int]) -> bottle.HTTPResponse:
        stored = entry.transfer_syntax
        choice = frame_choice(stored, parse(accept_header()))
        if choice is None:
            raise Refused(406, f"frames are stored as {UID(stored).name}: no accepted media type fits")
        part_type, as_stored = choice
        path = path_of(entry)
        first = imaging.frame_bytes(path, wanted[0], as_stored=as_stored, options=options)  # fails before headers

        def content(n: int) -> Iterator[bytes]:
            if n == wanted[0]:
                yield first.data
                return
            try:
                yield imaging.frame_bytes(path, n, as_stored=as_stored, options=options).data
            except ImagingError as exc:  # the headers are sent: the part stays empty, the log says why
                LOG.warning("wado_frame_failed sop_instance_uid=%s frame=%d reason=%s", entry.sop_uid, n, exc)

        full_type = f"{part_type}; transfer-syntax={first.transfer_syntax}"
        boundary = multipart.new_boundary()
        parts = ((full_type, content(n)) for n in wanted)
        return bottle.HTTPResponse(multipart.stream(boundary, parts), 200,
                                   {"Content-Type": multipart.content_type(boundary, part_type)})  # fmt: skip

    def bulkdata(study: str, series: str, sop: str, tag_path: str) -> bottle.HTTPResponse:
        entry = entry_of(study, series, sop)
        path = path_of(entry)
        tag_path = tag_path.strip("/").upper()
        if tag_path in PIXEL_TAGS.values():
            if entry.rows is None or tag_path != pixel_tag(path):
                raise Refused(404, f"this instance has no {tag_path} pixel data")
            return frames_answer(entry, list(range(1, entry.frames + 1)))
        if tag_path == DOCUMENT and entry.kind in (kinds.PDF, kinds.DOCUMENT):
            return document(entry, study)
        offset, length, value = _locate_value(path, tag_path)
        pieces: Iterator[bytes] = iter([value]) if value is not None else multipart.file_pieces(path, offset, length)
        if choose_multipart(OCTETS) is None:
            raise Refused(406, "bulk data is served as multipart/related; type=application/octet-stream")
        boundary = multipart.new_boundary()
        return bottle.HTTPResponse(multipart.stream(boundary, [(OCTETS, pieces)]), 200,
                                   {"Content-Type": multipart.content_type(boundary, OCTETS)})  # fmt: skip

    def pixel_tag(path: Path) -> str | None:
        try:
            return PIXEL_TAGS[stored_header(path)[2].keyword]
        except ImagingError:
            return None

    def document(entry: InstanceEntry, study: str, single_only: bool = False) -> bottle.HTTPResponse:
        """An encapsulated document: its own media type alone (with Range) when accepted, as a
        viewer's PDF pane asks, else (unless ``single_only``) as an octet-stream part."""
        path = path_of(entry)
        try:
            found = encapsulated.locate(path)
        except encapsulated.DocumentError as exc:
            raise Refused(422, str(exc)) from None
        accept = accept_header()
        ranges_ = parse(accept)
        single = next((r for r in ranges_ if r.covers(found.media_type)), None)
        if single_only and single is None:
            raise Refused(406, f"the document is rendered as {found.media_type}")
        if single is None and not (choose_multipart(OCTETS, accept) or choose_multipart(found.media_type, accept)):
            raise Refused(406, f"the document is served as {found.media_type} or as bulk data")
        if ranges.first_piece():
            record(audit.INSTANCES_ACCESSED, study, f"{found.label} read (instance {entry.instance_number})")
        if single is not None:
            headers = {"Content-Type": found.media_type, **DOCUMENT_HEADERS,
                       "Content-Disposition": f'inline; filename="document-{entry.instance_number or 0}.{found.extension}"'}  # fmt: skip
            return ranges.window_response(path, found.offset, found.length, headers, f'"{path.stem[:32]}"')
        part_type = OCTETS if choose_multipart(OCTETS, accept) else found.media_type
        boundary = multipart.new_boundary()
        pieces = multipart.file_pieces(path, found.offset, found.length)
        return bottle.HTTPResponse(multipart.stream(boundary, [(part_type, pieces)]), 200,
                                   {"Content-Type": multipart.content_type(boundary, part_type)})  # fmt: skip

    # -- rendered and thumbnails -----------------------------------------------------------

    def picture(entry: InstanceEntry, frame: int) -> bottle.HTTPResponse:
        if entry.kind == kinds.VIDEO:
            if choose(accept_header(), ["video/mp4"]) is None:
                raise Refused(406, "a video is rendered as video/mp4")
            # Its MP4 is served, with Range and 206 (503 while it is made), by the web UI's own route.
            location = bottle.request.script_name.rstrip("/") + f"/api/instances/{entry.sop_uid}/video.mp4"
            return bottle.HTTPResponse(status=307, headers={"Location": location})
        if entry.kind == kinds.PDF:  # rendered, an Encapsulated PDF is its PDF (PS3.18 8.3.4.3; OHIF asks so)
            return document(entry, archive.study_of_series(entry.series_uid) or "", single_only=True)
        media_type = choose(accept_header(), list(PICTURES))
        if media_type is None:
            raise Refused(406, "rendered frames are image/jpeg or image/png")
        asked = render_params(bottle.request.query)
        rendered = imaging.render_frame(path_of(entry), frame, fmt=PICTURES[media_type], options=options,
                                        quality=asked.quality, window=asked.window, size=asked.size,
                                        region=asked.region)  # fmt: skip
        return bottle.HTTPResponse(rendered.data, 200, {"Content-Type": rendered.media_type})

    def pictures(entries: list[InstanceEntry]) -> bottle.HTTPResponse:
        """A study or series rendered: each image's first frame, one part each."""
        media_type = choose_multipart_or_plain(tuple(PICTURES))
        if media_type is None:
            raise Refused(406, "rendered frames are image/jpeg or image/png")
        asked = render_params(bottle.request.query)

        def rendered(entry: InstanceEntry) -> Iterator[bytes]:
            try:
                yield imaging.render_frame(path_of(entry), 1, fmt=PICTURES[media_type], options=options,
                                           quality=asked.quality, window=asked.window, size=asked.size,
                                           region=asked.region).data  # fmt: skip
            except (ImagingError, OSError) as exc:
                LOG.warning("wado_render_failed sop_instance_uid=%s reason=%s", entry.sop_uid, exc)

        images = [e for e in entries if e.kind == kinds.IMAGE]
        if not images:
            raise Refused(404, "no images to render")
        boundary = multipart.new_boundary()
        parts = ((media_type, rendered(e)) for e in images)
        return bottle.HTTPResponse(multipart.stream(boundary, parts), 200,
                                   {"Content-Type": multipart.content_type(boundary, media_type)})  # fmt: skip

    def entries_of(study: str, series: str | None = None) -> list[InstanceEntry]:
        found = [archive.instance(item.sop_uid) for item in files_of(study, series)]
        return [e for e in found if e is not None]

    def study_rendered(study: str) -> bottle.HTTPResponse:
        return pictures(entries_of(study))

    def series_rendered(study: str, series: str) -> bottle.HTTPResponse:
        return pictures(entries_of(study, series))

    def instance_rendered(study: str, series: str, sop: str) -> bottle.HTTPResponse:
        return picture(entry_of(study, series, sop), 1)

    def frame_rendered(study: str, series: str, sop: str, numbers: str) -> bottle.HTTPResponse:
        wanted = _frame_list(numbers)
        if len(wanted) != 1:
            raise Refused(400, "render one frame at a time")
        return picture(entry_of(study, series, sop), wanted[0])

    def thumbnail_of(entry: InstanceEntry | None, frame: int = 1) -> bottle.HTTPResponse:
        if entry is None or entry.kind != kinds.IMAGE:
            raise Refused(404, "no image to make a thumbnail of")
        if choose(accept_header(), ["image/jpeg"]) is None:
            raise Refused(406, "thumbnails are image/jpeg")
        made = thumbnails.get(path_of(entry), entry.sop_uid, frame)
        return bottle.HTTPResponse(made.data, 200, {"Content-Type": made.media_type,
                                                    "Cache-Control": "private, max-age=300"})  # fmt: skip

    def first_series_thumbnail(study: str) -> bottle.HTTPResponse:
        """The thumbnail of the first series (in series order) that holds an image."""
        for item in files_of(study):
            entry = archive.instance(item.sop_uid)
            if entry is not None and entry.kind == kinds.IMAGE:
                return thumbnail_of(archive.middle_instance(entry.series_uid))
        raise Refused(404, "no images in this study")

    def series_thumbnail(study: str, series: str) -> bottle.HTTPResponse:
        files_of(study, series)
        return thumbnail_of(archive.middle_instance(series))

    def instance_thumbnail(study: str, series: str, sop: str) -> bottle.HTTPResponse:
        return thumbnail_of(entry_of(study, series, sop))

    def frame_thumbnail(study: str, series: str, sop: str, numbers: str) -> bottle.HTTPResponse:
        wanted = _frame_list(numbers)
        entry = entry_of(study, series, sop)
        if wanted[0] > entry.frames:
            raise Refused(404, f"no frame {wanted[0]}: the instance has {entry.frames}")
        return thumbnail_of(entry, wanted[0])

    # -- WADO-URI --------------------------------------------------------------------------

    def wado_uri() -> bottle.HTTPResponse:
        query = bottle.request.query
        if query.get("requestType") != "WADO":
            raise Refused(400, "requestType must be WADO")
        uids = [query.get(k, "").strip() for k in ("studyUID", "seriesUID", "objectUID")]
        if not all(uids):
            raise Refused(400, "studyUID, seriesUID and objectUID are required")
        study, series, sop = uids
        entry = entry_of(study, series, sop)
        wanted = [t.strip().split(";")[0].lower() for t in (query.get("contentType") or "").split(",") if t.strip()]
        if not wanted:
            wanted = ["application/dicom"] if entry.kind != kinds.IMAGE else ["image/jpeg"]
        for content_type in wanted:
            if content_type in (DICOM, "*/*") or (content_type == "application/*"):
                return wado_uri_file(study, entry, query.get("transferSyntax", "").strip())
            if content_type in PICTURES or content_type == "image/*":
                frame = _positive(query, "frameNumber") or 1
                if frame > entry.frames:
                    raise Refused(404, f"no frame {frame}: the instance has {entry.frames}")
                rows, columns = _positive(query, "rows"), _positive(query, "columns")
                fmt = PICTURES.get(content_type, "jpeg")
                rendered = imaging.render_frame(path_of(entry), frame, fmt=fmt, options=options,
                                                size=(columns, rows), quality=_positive(query, "imageQuality") or 90)  # fmt: skip
                return bottle.HTTPResponse(rendered.data, 200, {"Content-Type": rendered.media_type})
        raise Refused(406, "contentType must be application/dicom, image/jpeg or image/png")

    def wado_uri_file(study: str, entry: InstanceEntry, syntax: str) -> bottle.HTTPResponse:
        item = archive.stored_instance(entry.sop_uid)
        if item is None:
            raise Refused(404, "no such instance")
        ranges_ = [MediaRange("multipart/related", {"type": DICOM, **({"transfer-syntax": syntax} if syntax else {})})]
        out = outgoing_as(item, ranges_)
        if out is None:
            raise Refused(406, f"cannot send this instance in transfer syntax {syntax}")
        record(audit.EXPORT, study, f"instance retrieved by WADO-URI (instance {entry.instance_number})")
        headers = {
            "Content-Type": DICOM,
            "Content-Disposition": f'attachment; filename="instance-{entry.instance_number or 0}.dcm"',
        }
        return bottle.HTTPResponse(instance_bytes(out), 200, headers)

    s, se, i = "/studies/<study>", "/series/<series>", "/instances/<sop>"
    route(s, study_files)
    route(s + se, series_files)
    route(s + se + i, instance_file)
    route(s + "/metadata", study_metadata)
    route(s + se + "/metadata", series_metadata)
    route(s + se + i + "/metadata", instance_metadata)
    route(s + se + i + "/frames/<numbers>", frames)
    route(s + se + i + "/bulkdata/<tag_path:path>", bulkdata)
    route(s + "/rendered", study_rendered)
    route(s + se + "/rendered", series_rendered)
    route(s + se + i + "/rendered", instance_rendered)
    route(s + se + i + "/frames/<numbers>/rendered", frame_rendered)
    route(s + "/thumbnail", first_series_thumbnail)
    route(s + se + "/thumbnail", series_thumbnail)
    route(s + se + i + "/thumbnail", instance_thumbnail)
    route(s + se + i + "/frames/<numbers>/thumbnail", frame_thumbnail)
    route("/wado", wado_uri, prefixes=(PREFIX, ""))


# -- request pieces -------------------------------------------------------------------------


def _series_of(archive: Archive, sop_uid: str) -> str:
    entry = archive.instance(sop_uid)
    return entry.series_uid if entry is not None else ""


def _frame_list(text: str) -> list[int]:
    pieces = [p.strip() for p in text.split(",")]
    if not pieces or len(pieces) > MAX_FRAMES_LISTED or not all(p.isdigit() for p in pieces):
        raise Refused(400, "frames must be a comma-separated list of numbers from 1")
    numbers = [int(p) for p in pieces]
    if min(numbers) < 1:
        raise Refused(400, "frames are numbered from 1")
    return numbers


def _positive(query: bottle.FormsDict, name: str, high: int = MAX_SIDE) -> int | None:
    text = query.get(name)
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= high:
        raise Refused(400, f"{name} must be a whole number from 1 to {high}")
    return int(text)


def _locate_value(path: Path, tag_path: str) -> tuple[int, int, bytes | None]:
    """Where the value named by ``tag_path`` lies in the file (offset, length), or the value
    itself when pydicom read it; 404 when there is no such value."""
    steps = tag_path.split("/")
    if len(steps) % 2 != 1 or not all(len(s) == 8 for s in steps[::2]):
        raise Refused(404, "no such bulk data")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size=1024)
        for n in range(0, len(steps) - 1, 2):
            item = int(steps[n + 1])
            if item < 1:
                raise IndexError(item)
            ds = ds[int(steps[n], 16)].value[item - 1]
        tag = int(steps[-1], 16)
        element = ds.get_item(tag, keep_deferred=True)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise Refused(404, "no such bulk data") from None
    if element is None:
        raise Refused(404, "no such bulk data")
    if isinstance(element, RawDataElement) and element.value is None:  # left on disk
        return element.value_tell, element.length, None
    value = ds[tag].value
    if not isinstance(value, bytes):
        raise Refused(404, "no such bulk data: not a binary value")
    return 0, len(value), value


def _refusal(status: int, reason: str) -> bottle.HTTPResponse:
    route = bottle.request.environ.get("bottle.route")
    LOG.warning("dicomweb_refused status=%d route=%s reason=%s", status, route.rule if route else "?", reason)
    return problem(status, reason)
