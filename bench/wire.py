"""A C-FIND client on the wire, with Lightbox's own PDU code: responses are counted, their
identifiers not decoded, and a C-CANCEL can go out between two responses.

bench.query times servers with it (pynetdicom as a client decodes ~1 ms per response and
would measure itself); tests/test_cfind.py cancels with it through a small receive buffer
(pynetdicom's reader thread would have the whole answer buffered before it could cancel).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from appliance.dicom import dimse
from appliance.dicom.requestor import AssociationFailed, associate, release

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
PENDING = (0xFF00, 0xFF01)


def encode_identifier(ds: Dataset) -> bytes:
    """A query identifier in Implicit VR Little Endian, the one syntax the client proposes."""
    out = DicomBytesIO()
    out.is_implicit_VR, out.is_little_endian = True, True
    write_dataset(out, ds)
    return out.getvalue()


class FindClient:
    """One association proposing one C-FIND information model; use it as a context manager."""

    def __init__(self, host: str, port: int, calling_ae: str, called_ae: str, model: str,
                 timeout: float = 60.0, receive_buffer: int | None = None) -> None:  # fmt: skip
        self.model = model
        self.link, accepted = associate(
            host, port, calling_ae, called_ae, [(model, [IMPLICIT_VR_LITTLE_ENDIAN])], 0, timeout
        )
        if model not in accepted:
            release(self.link)
            raise AssociationFailed(f"{called_ae} refused the C-FIND context {model}")
        self.context_id = accepted[model][IMPLICIT_VR_LITTLE_ENDIAN]
        if receive_buffer is not None:  # a slow reader: the server's sends block sooner
            self.link.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.message_id = 0

    def __enter__(self) -> FindClient:
        return self

    def __exit__(self, *exc: object) -> None:
        release(self.link)

    def find(self, identifier: bytes) -> Iterator[int]:
        """Send one C-FIND-RQ with an encoded identifier; yield the status of each response,
        the pending ones and then the final one."""
        self.message_id = self.message_id % 0xFFFF + 1
        request = {dimse.AFFECTED_SOP_CLASS: self.model, dimse.COMMAND_FIELD: dimse.C_FIND_RQ,
                   dimse.MESSAGE_ID: self.message_id, dimse.PRIORITY: 0, dimse.DATASET_TYPE: dimse.HAS_DATASET}  # fmt: skip
        self.link.send(self.context_id, dimse.encode(request), identifier)
        command = bytearray()
        while True:
            pdv = self.link.next_pdv()
            if isinstance(pdv, str):
                raise AssociationFailed(f"peer sent {pdv} during C-FIND")
            value = self.link.read_exactly(pdv.length)
            if not pdv.is_command:
                continue  # a response identifier: skipped, not decoded
            command += value
            if not pdv.is_last:
                continue
            status = dimse.decode(bytes(command)).us(dimse.STATUS)
            command.clear()
            yield status
            if status not in PENDING:
                return

    def cancel(self) -> None:
        """C-CANCEL the C-FIND in progress; its responses go on until the final one."""
        cancel = {dimse.COMMAND_FIELD: dimse.C_CANCEL_RQ, dimse.MESSAGE_ID_BEING_RESPONDED_TO: self.message_id,
                  dimse.DATASET_TYPE: dimse.NO_DATASET}  # fmt: skip
        self.link.send(self.context_id, dimse.encode(cancel))
