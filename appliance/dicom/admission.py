"""The door's rules for each parsed A-ASSOCIATE-RQ: the called AE title (when the
``called_aet_check`` setting asks for Lightbox's own), then the device policy -- the request is
recorded against its device (``archive.devices``), and a device the policy does not admit gets
an A-ASSOCIATE-RJ."""

from __future__ import annotations

import logging

from appliance.archive import Archive, AssociationSeen, disk_full
from appliance.dicom import auditing, pdu

LOG = logging.getLogger("lightbox.dicom")


def seen(request: pdu.AssociateRequest, address: tuple[str, int]) -> AssociationSeen:
    syntaxes = dict.fromkeys(ts for cx in request.contexts for ts in cx.transfer_syntaxes)
    return AssociationSeen(
        calling_ae=request.calling_title,
        address=address[0],
        implementation_class_uid=request.implementation_class_uid,
        implementation_version=request.implementation_version,
        sop_classes=tuple(dict.fromkeys(cx.abstract_syntax for cx in request.contexts)),
        transfer_syntaxes=tuple(syntaxes),
    )


def rejection(
    archive: Archive, request: pdu.AssociateRequest, address: tuple[str, int], own_aet: str | None = None
) -> bytes | None:
    """The A-ASSOCIATE-RJ to answer with, or None to go on with the association.  ``own_aet``:
    the only called AE title accepted (compared as Orthanc does: case-insensitively), or None
    for any."""
    if own_aet is not None and request.called_title.upper() != own_aet.upper():
        LOG.warning(
            "association_rejected reason=called_ae_not_ours called_ae=%r calling_ae=%r address=%s",
            request.called_title,
            request.calling_title,
            address[0],
        )
        auditing.refused(archive, request.calling_title, address[0], f"called AE title {request.called_title!r}")
        return pdu.associate_rj(*pdu.REJECT_CALLED_AE)
    try:
        admitted = archive.devices.admit(seen(request, address))
    except Exception as exc:  # the index is unwritable: learning admits anyway, locked cannot tell
        if disk_full(exc):  # one line, not a traceback per association
            LOG.warning(
                "device_not_recorded reason=disk_full calling_ae=%r address=%s", request.calling_title, address[0]
            )
        else:
            LOG.exception("device_not_recorded calling_ae=%r address=%s", request.calling_title, address[0])
        if archive.devices.policy == "learning":
            return None
        return pdu.associate_rj(*pdu.REJECT_LOCAL_LIMIT)
    if admitted:
        return None
    LOG.warning(
        "association_rejected reason=device_not_approved calling_ae=%r address=%s policy=%s",
        request.calling_title,
        address[0],
        archive.devices.policy,
    )
    auditing.refused(archive, request.calling_title, address[0], f"device not approved ({archive.devices.policy})")
    return pdu.associate_rj(*pdu.REJECT_CALLING_AE)
