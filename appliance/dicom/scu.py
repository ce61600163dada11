"""Lightbox as a DICOM SCU towards known nodes."""

from __future__ import annotations

from pynetdicom import AE
from pynetdicom.sop_class import Verification

from appliance.archive import DicomNode


def echo(node: DicomNode, calling_aet: str, timeout: float = 10.0) -> tuple[bool, str]:
    """C-ECHO ``node``; return (success, what happened) for a person to read."""
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(Verification)
    assoc = ae.associate(node.host, node.port, ae_title=node.aet)
    if not assoc.is_established:
        if assoc.is_rejected:
            return False, f"association rejected: the peer does not accept {calling_aet} (add it to the peer's DICOM nodes?)"
        return False, "no association: nothing answered (is it switched on, are host and port right?)"
    try:
        rsp = assoc.send_c_echo()
    finally:
        assoc.release()
    if rsp is None or "Status" not in rsp:
        return False, "no C-ECHO response"
    return rsp.Status == 0, f"C-ECHO status 0x{rsp.Status:04X}"
