"""Operations on learned devices and nodes that need the network (the others are ``archive.devices``)."""

from __future__ import annotations

from appliance.archive import Archive
from appliance.archive import DicomNode
from appliance.dicom.scu import echo


def echo_device(archive: Archive, aet: str, calling_aet: str) -> tuple[bool, str]:
    """C-ECHO a learned device at its host and port; (success, what happened for a person).
    Raises ``DeviceError`` when the device is unknown or has no port."""
    return echo_node(archive.devices.reachable(aet), calling_aet)


def echo_node(node: DicomNode, calling_aet: str) -> tuple[bool, str]:
    """C-ECHO a node; (success, what happened, with where, for a person)."""
    ok, message = echo(node, calling_aet)
    return ok, f"{node.host}:{node.port} {message}"
