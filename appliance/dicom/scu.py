"""Lightbox as a verification SCU: C-ECHO a known node or a learned device, for a person to read
(``lightbox node echo``, ``lightbox device echo``, the Test buttons of the Devices page).  It
uses pynetdicom's client: one association per click, where its cost does not matter."""

from __future__ import annotations

from pynetdicom import AE

from appliance.archive import Archive, DicomNode
from appliance.certificates import Identity
from appliance.dicom.requestor import AssociationFailed
from appliance.dicom.sender import tls_for
from appliance.dicom.syntaxes import VERIFICATION_CLASS


def echo(
    node: DicomNode, calling_aet: str, timeout: float = 10.0, identity: Identity | None = None
) -> tuple[bool, str]:
    """C-ECHO ``node`` (over TLS, showing ``identity``, when it requires TLS); return
    (success, what happened) for a person to read."""
    try:
        tls = tls_for(node, identity)
    except AssociationFailed as exc:
        return False, str(exc)
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(VERIFICATION_CLASS)
    assoc = ae.associate(node.host, node.port, ae_title=node.aet, tls_args=(tls, node.host) if tls else None)
    if not assoc.is_established:
        if tls is not None and not assoc.is_rejected:
            return False, "no association: nothing answered, or TLS failed (is its certificate the one trusted here?)"
        if assoc.is_rejected:
            hint = "add it to the peer's DICOM nodes?"
            return False, f"association rejected: the peer does not accept {calling_aet} ({hint})"
        return False, "no association: nothing answered (is it switched on, are host and port right?)"
    try:
        rsp = assoc.send_c_echo()
    finally:
        assoc.release()
    if rsp is None or "Status" not in rsp:
        return False, "no C-ECHO response"
    return rsp.Status == 0, f"C-ECHO status 0x{rsp.Status:04X}"


def echo_node(node: DicomNode, calling_aet: str, identity: Identity | None = None) -> tuple[bool, str]:
    """C-ECHO a node; (success, what happened, with where, for a person)."""
    ok, message = echo(node, calling_aet, identity=identity)
    return ok, f"{node.host}:{node.port} {message}"


def echo_device(archive: Archive, aet: str, calling_aet: str) -> tuple[bool, str]:
    """C-ECHO a learned device at its host and port; (success, what happened for a person).
    Raises ``DeviceError`` when the device is unknown or has no port."""
    return echo_node(archive.devices.reachable(aet), calling_aet)
