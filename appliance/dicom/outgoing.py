"""Stored instances on their way out to a peer (C-MOVE and C-GET sub-operations).

A file goes out as stored when the peer accepted its transfer syntax (or, for uncompressed
little endian, the other uncompressed little endian syntax, which pynetdicom re-encodes to).
Otherwise it is decompressed to Explicit VR Little Endian (pydicom with the pylibjpeg
plugins), which pynetdicom turns into Implicit if that is what the peer took.  When even that
is impossible the instance is not sent: ``CannotSend`` says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, UID
from pynetdicom import build_context
from pynetdicom.presentation import PresentationContext

from appliance.archive.retrieval import RetrieveItem

UNCOMPRESSED_LE = frozenset({str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)})
MAX_CONTEXTS = 128  # PS3.8: odd context IDs 1-255

Accepted = dict[str, frozenset[str]]  # SOP class UID -> transfer syntaxes we may send it in


class CannotSend(Exception):
    """An instance that cannot go to this peer; the message is the reason for the log."""


def requested_contexts(items: Iterable[RetrieveItem]) -> list[PresentationContext]:
    """Contexts to propose to a C-MOVE destination: per SOP class, uncompressed little endian
    (which every instance can be sent in), and each compressed syntax as stored in a context
    of its own so that the peer can accept it without giving up the uncompressed one."""
    stored: dict[str, set[str]] = {}
    for item in items:
        stored.setdefault(item.sop_class_uid, set()).add(item.transfer_syntax)
    contexts = [build_context(cls, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]) for cls in stored]
    as_stored = [build_context(cls, ts) for cls, syntaxes in stored.items() for ts in sorted(syntaxes - UNCOMPRESSED_LE)]
    # Past the limit, the instances of the compressed contexts left out are decompressed.
    return (contexts + as_stored)[:MAX_CONTEXTS]


def accepted_syntaxes(contexts: Iterable[PresentationContext]) -> Accepted:
    """What we may send per SOP class, from an association's accepted contexts in which we
    act as SCU (on a C-GET association: those whose SCP/SCU role selection gave us that)."""
    accepted: dict[str, set[str]] = {}
    for cx in contexts:
        if cx.as_scu:
            accepted.setdefault(str(cx.abstract_syntax), set()).add(str(cx.transfer_syntax[0]))
    return {cls: frozenset(syntaxes) for cls, syntaxes in accepted.items()}


def dataset_for_peer(path: Path, item: RetrieveItem, accepted: Accepted) -> Dataset:
    """The instance at ``path`` ready for pynetdicom to send in a syntax the peer accepted."""
    offered = accepted.get(item.sop_class_uid, frozenset())
    stored = item.transfer_syntax
    if not offered:
        raise CannotSend(f"peer accepted no presentation context for SOP class {item.sop_class_uid}")
    as_stored = stored in offered or (stored in UNCOMPRESSED_LE and offered & UNCOMPRESSED_LE)
    if not as_stored and not (offered & UNCOMPRESSED_LE and UID(stored).is_compressed):
        raise CannotSend(f"peer refused {UID(stored).name} and accepted no uncompressed little endian syntax to decode to")
    try:
        ds = dcmread(path)
    except (OSError, ValueError) as exc:
        raise CannotSend(f"stored file unreadable: {exc}") from exc
    if not as_stored:
        try:
            ds.decompress()
        except Exception as exc:  # any decoder failure (no plugin, corrupt stream) means the same
            raise CannotSend(f"cannot decompress {UID(stored).name}: {exc}") from exc
    return ds


def unsendable(item: RetrieveItem) -> Dataset:
    """A stand-in for an instance we cannot send.  pynetdicom's retrieve loop counts a failed
    sub-operation (and lists its SOP Instance UID) only when a C-STORE fails; this dataset
    has no file meta, so its C-STORE fails before anything goes on the wire."""
    ds = Dataset()
    ds.SOPClassUID = item.sop_class_uid
    ds.SOPInstanceUID = item.sop_uid
    return ds
