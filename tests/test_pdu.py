"""Lightbox's upper-layer PDU code checked against pynetdicom's, an independent encoder."""

from __future__ import annotations

import random

from pynetdicom import build_context
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, ImplementationClassUIDNotification, MaximumLengthNotification
from pynetdicom.sop_class import CTImageStorage, Verification

from appliance.dicom import dimse, pdu


def pynetdicom_request() -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = pdu.APPLICATION_CONTEXT
    primitive.calling_ae_title = "US_ROOM_1"
    primitive.called_ae_title = "LIGHTBOX"
    contexts = [
        build_context(Verification),
        build_context(CTImageStorage, ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1"]),
    ]
    for number, cx in enumerate(contexts):
        cx.context_id = 2 * number + 1
    primitive.presentation_context_definition_list = contexts
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16384
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.3.4.5"
    primitive.user_information = [max_length, implementation]
    rq = A_ASSOCIATE_RQ()
    rq.from_primitive(primitive)
    return rq.encode()


def test_associate_rq_parsed_as_pynetdicom_encodes_it():
    encoded = pynetdicom_request()
    pdu_type, length = pdu.HEADER.unpack(encoded[:6])
    assert pdu_type == pdu.ASSOCIATE_RQ and length == len(encoded) - 6
    request = pdu.parse_associate_rq(encoded[6:])
    assert request.calling_title == "US_ROOM_1" and request.called_title == "LIGHTBOX"
    assert request.application_context == pdu.APPLICATION_CONTEXT
    assert request.max_pdu == 16384 and request.implementation_class_uid == "1.2.3.4.5"
    verification_syntaxes = [str(ts) for ts in build_context(Verification).transfer_syntax]
    assert [(c.context_id, c.abstract_syntax, c.transfer_syntaxes) for c in request.contexts] == [
        (1, str(Verification), verification_syntaxes),
        (3, str(CTImageStorage), ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1"]),
    ]


def test_associate_ac_decodes_in_pynetdicom():
    request = pdu.parse_associate_rq(pynetdicom_request()[6:])
    results = [
        pdu.ContextResult(1, pdu.ACCEPTED, "1.2.840.10008.1.2"),
        pdu.ContextResult(3, pdu.TRANSFER_SYNTAXES_NOT_SUPPORTED, "1.2.840.10008.1.2.4.50"),
    ]
    encoded = pdu.associate_ac(request, results, 1 << 20, "2.25.1", "LIGHTBOX_0")
    ac = A_ASSOCIATE_AC()
    ac.decode(encoded)
    primitive = ac.to_primitive()
    assert primitive.maximum_length_received == 1 << 20
    assert primitive.implementation_class_uid == "2.25.1"
    outcome = {
        cx.context_id: (cx.result, cx.transfer_syntax[0])
        for cx in primitive.presentation_context_definition_results_list
    }
    assert outcome == {1: (0, "1.2.840.10008.1.2"), 3: (4, "1.2.840.10008.1.2.4.50")}


def test_store_response_round_trips():
    request = dimse.decode(
        dimse.encode(
            {
                dimse.AFFECTED_SOP_CLASS: str(CTImageStorage),
                dimse.COMMAND_FIELD: dimse.C_STORE_RQ,
                dimse.MESSAGE_ID: 7,
                dimse.DATASET_TYPE: 0x0000,
                dimse.AFFECTED_SOP_INSTANCE: "1.2.3",
            }
        )[12:]  # past the group length element
    )
    response = dimse.decode(dimse.response(request, 0xA700, comment="refused: disk full")[12:])
    assert response.us(dimse.COMMAND_FIELD) == dimse.C_STORE_RSP
    assert response.us(dimse.MESSAGE_ID_BEING_RESPONDED_TO) == 7
    assert response.us(dimse.STATUS) == 0xA700
    assert response.text(dimse.AFFECTED_SOP_INSTANCE) == "1.2.3"
    assert response[dimse.ERROR_COMMENT].decode().strip() == "refused: disk full"


def test_mangled_requests_raise_protocol_errors_only():
    """Bounded fuzz: truncations and byte flips of a real request either parse or raise
    ProtocolError, never anything else (which would be a crash in the acceptor)."""
    body = pynetdicom_request()[6:]
    rng = random.Random(20261123)
    for _ in range(2000):
        mangled = bytearray(body[: rng.randrange(len(body) + 1)])
        for _ in range(rng.randrange(4)):
            if mangled:
                mangled[rng.randrange(len(mangled))] = rng.randrange(256)
        try:
            pdu.parse_associate_rq(bytes(mangled))
        except pdu.ProtocolError:
            pass
