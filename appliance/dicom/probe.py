"""The service's C-ECHO of its own DICOM port (``appliance.health``): an association from the
outside in, through whichever process accepts it, answered only if that process serves."""

from __future__ import annotations

import ssl

from appliance.dicom import dimse, pdu, requestor
from appliance.dicom.syntaxes import IMPLICIT_LE, VERIFICATION_CLASS

MAX_PDU = 16384


class ProbeFailed(Exception):
    """The port did not answer the C-ECHO as it should; the message says how."""


def echo(
    host: str, port: int, called_ae: str, calling_ae: str, timeout: float, tls: ssl.SSLContext | None = None
) -> None:
    """Associate (over ``tls`` if given), C-ECHO and release within ``timeout`` seconds a step;
    raise ProbeFailed if not."""
    try:
        link, accepted = requestor.associate(
            host, port, calling_ae, called_ae, [(VERIFICATION_CLASS, [IMPLICIT_LE])], MAX_PDU, timeout, tls
        )
    except requestor.AssociationFailed as exc:
        raise ProbeFailed(str(exc)) from exc
    try:
        context_id = accepted.get(VERIFICATION_CLASS, {}).get(IMPLICIT_LE)
        if context_id is None:
            raise ProbeFailed("verification was not accepted")
        link.send(context_id, dimse.echo_request(1, VERIFICATION_CLASS))
        answer = link.read_command(dimse.MAX_COMMAND_SET)
        if isinstance(answer, str):
            raise ProbeFailed(f"{answer} instead of a C-ECHO-RSP")
        response = dimse.decode(answer[1])
        if response.field != dimse.C_ECHO_RSP or response.us(dimse.STATUS) != 0:
            raise ProbeFailed(f"C-ECHO answered with status 0x{response.us(dimse.STATUS):04X}")
    except (OSError, pdu.ProtocolError) as exc:
        raise ProbeFailed(f"C-ECHO failed: {exc}") from exc
    finally:
        requestor.release(link)
