"""What a learned device may do with Lightbox now, for an admin to read.

The device policy, the device's status, its node (if any) and the ``query_retrieve_from``
setting decide it together, by the same rules the DICOM side applies: ``devices.admits`` at
the door, ``nodes.may`` for query, retrieve and storage commitment, storage and C-ECHO for
anyone admitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.archive.registry.devices import LearnedDevice, admits
from appliance.archive.registry.nodes import DicomNode, may

ASKED = ("find", "get", "move", "commit")  # what a node must be allowed (or the policy lets anyone)


@dataclass(frozen=True)
class Access:
    admitted: bool  # it may associate at all: C-ECHO, and send images (C-STORE)
    reason: str  # why (or why not), in a sentence
    may: tuple[str, ...]  # what it may ask of Lightbox: "store", then "find", "get", "move", "commit" as allowed
    receives: bool  # Lightbox sends to it (C-MOVE destination, forwarding): a node allowed to store
    testable: bool  # its host and own DICOM port are known: Test (C-ECHO) can call it


def device_access(device: LearnedDevice, node: DicomNode | None, policy: str, query_retrieve_from: str) -> Access:
    admitted = admits(policy, device.status, node is not None)
    if not admitted:
        reason = f"Refused: the box is locked and this device is {'ignored' if device.status == 'ignored' else 'not approved'}."
    elif device.status == "approved":
        reason = "Approved."
    elif node is not None:
        reason = "Admitted: it is a known DICOM node."
    else:
        reason = "Admitted while the box is learning: once it is locked, refused until approved."
    operations = ("store", *(op for op in ASKED if may(op, node, query_retrieve_from))) if admitted else ()
    return Access(
        admitted=admitted,
        reason=reason,
        may=operations,
        receives=node is not None and node.allows("store"),
        testable=bool(device.host) and device.port is not None,
    )
