"""Operations on learned devices that need the network (the others are ``archive.devices``)."""

from __future__ import annotations

from appliance.archive import Archive
from appliance.dicom.scu import echo


def echo_device(archive: Archive, aet: str, calling_aet: str) -> tuple[bool, str]:
    """C-ECHO a learned device at its host and port; (success, what happened for a person).
    Raises ``DeviceError`` when the device is unknown or has no port."""
    target = archive.devices.reachable(aet)
    ok, message = echo(target, calling_aet)
    return ok, f"{target.host}:{target.port} {message}"
