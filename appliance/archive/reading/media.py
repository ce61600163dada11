"""A study or series as DICOM media (PS3.10, PS3.11 General Purpose): files named
``IMAGES/SE000001/IM000001`` and a DICOMDIR describing them, built from the index alone.

The names say nothing about the patient.  The DICOMDIR is encoded by hand, record by record
(~200 bytes per image, Explicit VR Little Endian), and handed out in pieces: its offsets are
worked out from the records' sizes first, so nothing but a few integers per record is held.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian, MediaStorageDirectoryStorage, generate_uid

from appliance.archive.index import database
from appliance.archive.intake.header import Origin, build_meta, encode_meta

FILESET_ID = "LIGHTBOX"
_RECORD_TYPES = ("PATIENT", "STUDY", "SERIES", "IMAGE")
_IMAGE = 3
_MAX_VALUE = 0xFFFE  # the most a 16-bit length holds, even
# Item tag and length, then Offset of the Next Directory Record (UL), Record In-use Flag (US),
# Offset of Referenced Lower-Level Directory Entity (UL): the fixed head of every record.
_RECORD_HEAD = struct.Struct("<HHI HH2sHI HH2sHH HH2sHI")
_ROOT_HEAD = struct.Struct("<HH2sHI HH2sHI HH2sHH HH2s2xI")  # root offsets, consistency flag, the sequence


@dataclass(frozen=True, slots=True)  # one per instance of a study: no __dict__ each
class MediaFile:
    """One stored instance and the name it gets on the media."""

    name: str  # e.g. IMAGES/SE000001/IM000001
    file_key: str
    size: int
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    instance_number: int | None
    series_uid: str
    modality: str
    series_number: int | None
    study_uid: str
    study_date: str
    study_time: str
    study_description: str
    study_id: str
    accession: str
    patient_id: str
    patient_name: str


_UNIQUE_COLUMNS = (0, 1, 2, 5)  # file key, size, SOP Instance UID, Instance Number: one per instance


def media_files(study_uid: str, series_uid: str | None = None) -> list[MediaFile]:
    """The instances of a study (or of one of its series), in series and instance order, each
    with its media name.  Empty when nothing matches."""
    sql = (
        "SELECT i.file_key, i.size, i.sop_uid, i.sop_class_uid, i.transfer_syntax, i.instance_number,"
        " se.series_uid, se.modality, se.series_number, st.study_uid, st.study_date, st.study_time,"
        " st.description, st.study_id, st.accession, p.patient_id, p.name"
        " FROM instance i JOIN series se ON se.id = i.series_id JOIN study st ON st.id = se.study_id"
        " JOIN patient p ON p.id = st.patient_id WHERE st.study_uid = ?"
        + (" AND se.series_uid = ?" if series_uid else "")
        + " ORDER BY se.series_number IS NULL, se.series_number, se.series_uid, i.instance_number, i.sop_uid"
    )
    files: list[MediaFile] = []
    folders: dict[str, int] = {}
    counts: dict[int, int] = {}
    shared: dict[Any, Any] = {}  # a value the instances repeat (study, series, class) is kept once
    for row in database.execute_sql(sql, (study_uid, series_uid) if series_uid else (study_uid,)):
        folder = folders.setdefault(row[6], len(folders) + 1)
        counts[folder] = counts.get(folder, 0) + 1
        values = [v if i in _UNIQUE_COLUMNS else shared.setdefault(v, v) for i, v in enumerate(row)]
        files.append(MediaFile(f"IMAGES/SE{folder:06d}/IM{counts[folder]:06d}", *values))
    return files


def _element(tag: int, vr: bytes, value: str) -> bytes:
    """One short-length element, UTF-8 (ISO_IR 192), padded to even length: UIDs with NUL,
    the rest with a space."""
    raw = value.encode()
    if len(raw) > _MAX_VALUE:  # only a hostile file's value; cut on a character boundary
        raw = raw[:_MAX_VALUE].decode(errors="ignore").encode()
    if len(raw) % 2:
        raw += b"\0" if vr == b"UI" else b" "
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(raw)) + raw


def _number(value: int | None, place: str) -> str:
    """Series and Instance Number are Type 1 in a record (PS3.3 F.5): one the file lacks is
    its place on the media (SE000002 -> 2), as DCMTK's dcmmkdir +I invents them."""
    return str(int(place[2:]) if value is None else value)


def _body(level: int, f: MediaFile) -> bytes:
    """A record's Directory Record Type and the attributes of its level (PS3.3 F.5), in tag order."""
    _images, folder, image = f.name.split("/")
    if level == 0:
        values = [(0x00100010, b"PN", f.patient_name), (0x00100020, b"LO", f.patient_id)]
    elif level == 1:
        values = [
            (0x00080020, b"DA", f.study_date),
            (0x00080030, b"TM", f.study_time),
            (0x00080050, b"SH", f.accession),
            (0x00081030, b"LO", f.study_description),
            (0x0020000D, b"UI", f.study_uid),
            (0x00200010, b"SH", f.study_id),
        ]
    elif level == 2:
        values = [
            (0x00080060, b"CS", f.modality),
            (0x0020000E, b"UI", f.series_uid),
            (0x00200011, b"IS", _number(f.series_number, folder)),
        ]
    else:
        values = [
            (0x00041500, b"CS", f.name.replace("/", "\\")),
            (0x00041510, b"UI", f.sop_class_uid),
            (0x00041511, b"UI", f.sop_uid),
            (0x00041512, b"UI", f.transfer_syntax),
            (0x00200013, b"IS", _number(f.instance_number, image)),
        ]
    return _element(0x00041430, b"CS", _RECORD_TYPES[level]) + b"".join(_element(*v) for v in values)


def _walk(files: list[MediaFile]) -> Iterator[tuple[int, MediaFile]]:
    """The directory records depth first: (level, the file whose values it carries)."""
    open_keys: list[str] = []  # the key of the open record at each level
    for f in files:
        keys = (f.patient_id + "\0" + f.patient_name, f.study_uid, f.series_uid, f.sop_uid)
        for level, key in enumerate(keys):
            if len(open_keys) > level and open_keys[level] == key:
                continue
            del open_keys[level:]
            open_keys.append(key)
            yield level, f


def dicomdir(files: list[MediaFile]) -> Iterator[bytes]:
    """The DICOMDIR (PS3.3 F.2, PS3.10 8) for ``files``, as Part 10 bytes in pieces.

    Offsets count bytes from the start of the file and have a fixed size, so a first walk
    adds up the records' sizes and links (a next sibling comes later); the second writes them.
    """
    meta = encode_meta(build_meta(MediaStorageDirectoryStorage, generate_uid(None), ExplicitVRLittleEndian,
                                  Origin(via="media")))  # fmt: skip
    fileset_id = _element(0x00041130, b"CS", FILESET_ID)
    starts = array("Q")  # where each record starts
    sibling = array("q")  # the next record at the same level under the same parent, or -1
    last: list[int] = []  # the last record at each level under the open parents
    sequence_start = position = len(meta) + len(fileset_id) + _ROOT_HEAD.size
    for record, (level, f) in enumerate(_walk(files)):
        del last[level + 1 :]
        if len(last) > level:
            sibling[last[level]] = record
            last[level] = record
        else:
            last.append(record)
        starts.append(position)
        sibling.append(-1)
        position += _RECORD_HEAD.size + len(_body(level, f))
    first_root = starts[0] if starts else 0
    last_root = starts[last[0]] if starts else 0
    yield meta + fileset_id + _ROOT_HEAD.pack(
        0x0004, 0x1200, b"UL", 4, first_root, 0x0004, 0x1202, b"UL", 4, last_root,
        0x0004, 0x1212, b"US", 2, 0, 0x0004, 0x1220, b"SQ", position - sequence_start,
    )  # fmt: skip
    for record, (level, f) in enumerate(_walk(files)):
        body = _body(level, f)
        following = starts[sibling[record]] if sibling[record] >= 0 else 0
        lower = starts[record + 1] if level < _IMAGE else 0  # a record above IMAGE has its first child next
        yield _RECORD_HEAD.pack(
            0xFFFE, 0xE000, _RECORD_HEAD.size - 8 + len(body), 0x0004, 0x1400, b"UL", 4, following,
            0x0004, 0x1410, b"US", 2, 0xFFFF, 0x0004, 0x1420, b"UL", 4, lower,
        ) + body  # fmt: skip
    yield _element(0x00080005, b"CS", "ISO_IR 192")  # names are kept decoded; UTF-8 writes them all
