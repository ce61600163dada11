"""C-MOVE and C-GET handlers (pynetdicom's generator protocol).

A C-MOVE handler yields the destination (address, port, association arguments), then the
number of sub-operations, then a (status, dataset) pair per instance; a C-GET handler the
same without the destination.  pynetdicom sends each dataset as a C-STORE sub-operation,
answers Pending with the remaining/completed/failed/warning counts, and ends with Success,
0xB000 (some failed: the Failed SOP Instance UID List) or 0xA702 (all failed).  Who may
retrieve at all is decided at negotiation (``policy.py``).
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Callable, Iterator

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import evt

from appliance.archive import Archive
from appliance.archive.retrieval import LEVEL_KEYS, RetrieveItem
from appliance.dicom import outgoing

LOG = logging.getLogger("lightbox.dicom")

PENDING = 0xFF00
CANCEL = 0xFE00
LEVELS = tuple(LEVEL_KEYS)  # top down
STUDY_ROOT_LEVELS = LEVELS[1:]
UNKNOWN_DESTINATION = (None, None)  # pynetdicom answers 0xA801


class BadIdentifier(ValueError):
    """The identifier does not name instances the way PS3.4 C.4.2.1.4.1 says."""


def retrieve_keys(identifier: Dataset, study_root: bool) -> tuple[str, dict[str, list[str]]]:
    """(level, {keyword: values}) from a C-MOVE/C-GET identifier: the unique keys of the
    retrieve level (a list allowed) and of each level above it (Patient ID only in the
    Patient Root model)."""
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    levels = STUDY_ROOT_LEVELS if study_root else LEVELS
    if level not in levels:
        raise BadIdentifier(f"Query/Retrieve Level {level!r} is not one of {', '.join(levels)}")
    keys = {}
    for above in levels[: levels.index(level) + 1]:
        keyword = LEVEL_KEYS[above]
        value = identifier.get(keyword, "")
        values = list(value) if isinstance(value, MultiValue) else str(value).split("\\")
        keys[keyword] = [v.strip() for v in values if v.strip()]
    if not keys[LEVEL_KEYS[level]]:
        raise BadIdentifier(f"{LEVEL_KEYS[level]} is required at {level} level")
    return level, keys


def _selection(event: evt.Event, archive: Archive, operation: str) -> list[RetrieveItem]:
    study_root = "StudyRoot" in event.request.AffectedSOPClassUID.keyword  # type: ignore[union-attr]
    try:
        level, keys = retrieve_keys(event.identifier, study_root)
    except Exception as exc:  # an undecodable identifier as much as a wrong one
        LOG.warning("retrieve_refused op=%s calling_ae=%r reason=%r", operation, event.assoc.requestor.ae_title, str(exc))
        raise BadIdentifier(str(exc)) from exc
    items = archive.instances_for_retrieve(level, keys)
    LOG.info(
        "retrieve_requested op=%s calling_ae=%r level=%s keys=%d instances=%d",
        operation,
        event.assoc.requestor.ae_title,
        level,
        len(keys[LEVEL_KEYS[level]]),
        len(items),
    )
    return items


def _sub_operations(
    event: evt.Event, archive: Archive, items: list[RetrieveItem], accepted: Callable[[], outgoing.Accepted]
) -> Iterator[tuple[int, Dataset | None]]:
    """A (status, dataset) pair per instance, until done or cancelled."""
    unsendable = 0
    for item in items:
        if event.is_cancelled:
            LOG.info("retrieve_cancelled calling_ae=%r", event.assoc.requestor.ae_title)
            yield CANCEL, None
            return
        try:
            dataset = outgoing.dataset_for_peer(archive.storage.path(item.file_key), item, accepted())
        except outgoing.CannotSend as exc:
            unsendable += 1
            LOG.warning("retrieve_instance_failed sop_instance_uid=%s reason=%r", item.sop_uid, str(exc))
            dataset = outgoing.unsendable(item)
        yield PENDING, dataset
    LOG.info("retrieve_done instances=%d unsendable=%d", len(items), unsendable)


class _Destination:
    """The C-MOVE sub-association pynetdicom opens for us: we need its socket (for
    TCP_NODELAY: a C-STORE is request/response) and its accepted contexts."""

    def __init__(self) -> None:
        self.assoc: Any = None
        self._accepted: outgoing.Accepted | None = None

    def opened(self, event: evt.Event) -> None:
        self.assoc = event.assoc
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def accepted(self) -> outgoing.Accepted:
        if self._accepted is None:
            self._accepted = outgoing.accepted_syntaxes(self.assoc.accepted_contexts)
        return self._accepted


def handle_move(event: evt.Event, archive: Archive) -> Iterator[Any]:
    calling_ae = event.assoc.requestor.ae_title
    node = archive.nodes.get(event.move_destination or "")
    if node is None or not node.allows("store"):
        LOG.warning(
            "retrieve_refused op=move calling_ae=%r destination=%r reason=%s",
            calling_ae,
            event.move_destination,
            "unknown destination" if node is None else "destination not allowed to receive (store)",
        )
        yield UNKNOWN_DESTINATION
        return
    items = _selection(event, archive, "move")
    destination = _Destination()
    LOG.info("retrieve_destination aet=%r host=%s port=%d", node.aet, node.host, node.port)
    yield node.host, node.port, {
        "contexts": outgoing.requested_contexts(items),
        "evt_handlers": [(evt.EVT_CONN_OPEN, destination.opened)],
    }
    yield len(items)
    yield from _sub_operations(event, archive, items, destination.accepted)


def handle_get(event: evt.Event, archive: Archive) -> Iterator[Any]:
    items = _selection(event, archive, "get")
    yield len(items)
    accepted = outgoing.accepted_syntaxes(event.assoc.accepted_contexts)
    yield from _sub_operations(event, archive, items, lambda: accepted)
