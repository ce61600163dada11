"""The C-STORE service: a received dataset into the archive, acknowledged only when safe.

``spool`` opens the file the dataset streams into as it arrives, already beginning with the
meta header Lightbox will store (who sent it, from where) and hashed on the way; ``serve`` hands
it to ``archive.ingest`` (validate, fsync, rename into storage, commit the index row) and answers
with the status its outcome maps to.  A full disk or an oversize instance is 0xA700.
"""

from __future__ import annotations

import logging

from appliance.archive import BoundedSpool, Spooled, build_meta, encode_meta
from appliance.dicom import dimse
from appliance.dicom.context import Final, Request, ServiceContext
from appliance.dicom.status import OUT_OF_RESOURCES, STATUS_FOR_OUTCOME

LOG = logging.getLogger("lightbox.dicom")


def spool(context: ServiceContext, command: dimse.Command, transfer_syntax: str) -> BoundedSpool:
    """Where the C-STORE's dataset goes (its row's ``receive``)."""
    sop_class, sop_instance = command.text(dimse.AFFECTED_SOP_CLASS), command.text(dimse.AFFECTED_SOP_INSTANCE)
    meta = build_meta(sop_class, sop_instance, transfer_syntax, context.origin)
    writer = BoundedSpool(context.archive.storage.spool, context.options.max_instance_bytes)
    writer.write(encode_meta(meta))
    return writer


def serve(context: ServiceContext, request: Request[BoundedSpool]) -> Final:
    writer = request.dataset
    try:
        if writer.error is not None:
            LOG.warning(
                "ingest outcome=out_of_resources via=dicom calling_ae=%r address=%s reason=%r",
                context.calling_ae, context.origin.address, writer.error,
            )  # fmt: skip
            return Final(OUT_OF_RESOURCES, f"refused: {writer.error}")
        result = context.archive.ingest(writer.path, context.origin, Spooled(writer.digest.hexdigest(), writer.size))
        context.note(result)
        return Final(STATUS_FOR_OUTCOME[result.outcome], result.reason)
    finally:
        writer.discard()  # gone already if ingest moved it into storage
