"""Stored instances on their way out to a peer (the sub-operations of ``sender.py``).

A file goes out as stored, its bytes streamed from disk, when the peer accepted its transfer
syntax.  Otherwise it is re-encoded by pydicom: to the other uncompressed little endian syntax,
or decompressed (pylibjpeg plugins) to Explicit, else Implicit VR Little Endian.  When even
that is impossible the instance is not sent: ``CannotSend`` says why.  Never is a file sent in
a syntax the peer did not accept.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID, ExplicitVRBigEndian, JPEGBaseline8Bit, JPEGExtended12Bit

from appliance.archive import InstanceFile, dataset_offset
from appliance.dicom import dimse
from appliance.dicom.link import Link
from appliance.dicom.syntaxes import EXPLICIT_LE, IMPLICIT_LE

ALWAYS_LOSSY = (str(JPEGBaseline8Bit), str(JPEGExtended12Bit))  # DCT: never lossless
UNCOMPRESSED_LE = (EXPLICIT_LE, IMPLICIT_LE)  # in order of preference
MAX_CONTEXTS = 128  # PS3.8: odd context IDs 1-255

Accepted = dict[str, dict[str, int]]  # SOP class UID -> transfer syntax -> presentation context id


class CannotSend(Exception):
    """An instance that cannot go to this peer; the message is the reason for the log."""


def requested_contexts(items: Iterable[InstanceFile]) -> list[tuple[str, list[str]]]:
    """(abstract syntax, transfer syntaxes) to propose to a C-MOVE destination: per SOP class,
    uncompressed little endian (which every instance can be sent in), and each compressed
    syntax as stored in a context of its own so that the peer can accept it without giving up
    the uncompressed one."""
    stored: dict[str, set[str]] = {}
    for item in items:
        stored.setdefault(item.sop_class_uid, set()).add(item.transfer_syntax)
    contexts = [(cls, list(UNCOMPRESSED_LE)) for cls in stored]
    as_stored = [(cls, [ts]) for cls, syntaxes in stored.items() for ts in sorted(syntaxes - set(UNCOMPRESSED_LE))]
    # Past the limit, the instances of the compressed contexts left out are decompressed.
    return (contexts + as_stored)[:MAX_CONTEXTS]


@dataclass(frozen=True)
class Choice:
    context_id: int
    transfer_syntax: str
    as_stored: bool


def choose(item: InstanceFile, accepted: Accepted) -> Choice:
    """The context and syntax ``item`` goes out in, or CannotSend."""
    offered = accepted.get(item.sop_class_uid, {})
    stored = item.transfer_syntax
    if not offered:
        raise CannotSend(f"peer accepted no presentation context for SOP class {item.sop_class_uid}")
    if stored in offered:
        return Choice(offered[stored], stored, True)
    target = next((ts for ts in UNCOMPRESSED_LE if ts in offered), None)
    if target is None or not (stored in UNCOMPRESSED_LE or UID(stored).is_compressed):
        raise CannotSend(
            f"peer refused {UID(stored).name} and accepted no uncompressed little endian syntax to decode to"
        )
    return Choice(offered[target], target, False)


def reencoded(path: Path, stored_syntax: str, target: str) -> bytes:
    """The dataset of the file at ``path`` encoded in ``target``: an uncompressed little endian
    syntax, or (for a file whose meta header we cannot skip) the stored syntax itself.

    Every UID stays as stored (DESIGN rule 8): pydicom 3's ``decompress()`` would make a new
    SOP Instance UID by default, and the C-STORE request names the stored one."""
    try:
        ds = dcmread(path)
    except (OSError, ValueError) as exc:
        raise CannotSend(f"stored file unreadable: {exc}") from exc
    if UID(stored_syntax).is_compressed and target in UNCOMPRESSED_LE:
        try:
            ds.decompress(generate_instance_uid=False)
        except Exception as exc:  # any decoder failure (no plugin, corrupt stream) means the same
            raise CannotSend(f"cannot decompress {UID(stored_syntax).name}: {exc}") from exc
        if stored_syntax in ALWAYS_LOSSY and "LossyImageCompression" not in ds:
            ds.LossyImageCompression = "01"  # as DCMTK's decoder does: the pixels were lossy once
    out = DicomBytesIO()
    out.is_implicit_VR, out.is_little_endian = target == IMPLICIT_LE, target != str(ExplicitVRBigEndian)
    write_dataset(out, ds)
    return out.getvalue()


def send_instance(
    link: Link,
    item: InstanceFile,
    path: Path,
    accepted: Accepted,
    message_id: int,
    originator: tuple[str, int] | None = None,
) -> None:
    """Send ``item`` as a C-STORE-RQ on ``link`` (its response is the caller's to read)."""
    choice = choose(item, accepted)
    command = dimse.store_request(message_id, item.sop_class_uid, item.sop_uid, originator)
    try:
        fp = open(path, "rb")
    except OSError as exc:
        raise CannotSend(f"stored file missing: {exc.strerror}") from exc
    with fp:
        offset = dataset_offset(fp) if choice.as_stored else None
        if offset is not None:
            length = fp.seek(0, io.SEEK_END) - offset
            fp.seek(offset)
            link.send_file_dataset(choice.context_id, command, fp, length)
            return
    link.send(choice.context_id, command, reencoded(path, item.transfer_syntax, choice.transfer_syntax))
