"""An audit event as a DICOM audit message (PS3.15 A.5, the schema's XML), from a row of the
trail: the event and its codes, the person or device that acted (requestor) and Lightbox,
the study as participant object, and the event's place in the hash chain."""

from __future__ import annotations

import base64
import datetime
from xml.etree import ElementTree as ET

from appliance.archive import audit

# PS3.16 CID 400 (DCM codes) per event: (EventID code, its meaning)
EVENT_IDS = {
    audit.APPLICATION_ACTIVITY: ("110100", "Application Activity"),
    audit.INSTANCES_ACCESSED: ("110103", "DICOM Instances Accessed"),
    audit.INSTANCES_TRANSFERRED: ("110104", "DICOM Instances Transferred"),
    audit.EXPORT: ("110106", "Export"),
    audit.PATIENT_RECORD: ("110110", "Patient Record"),
    audit.QUERY: ("110112", "Query"),
    audit.SECURITY_ALERT: ("110113", "Security Alert"),
    audit.USER_AUTHENTICATION: ("110114", "User Authentication"),
}
LOGIN, LOGOUT = ("110122", "Login"), ("110123", "Logout")  # EventTypeCode of User Authentication
STUDY_UID_TYPE = ("110180", "Study Instance UID")  # ParticipantObjectIDTypeCode
ACCESS_POINT_IP = "2"  # NetworkAccessPointTypeCode: an IP address


def _code(parent: ET.Element, tag: str, code: tuple[str, str]) -> None:
    ET.SubElement(parent, tag, {"csd-code": code[0], "codeSystemName": "DCM", "originalText": code[1]})


def audit_message(event: audit.Event, chain: str, source_id: str, own_aet: str) -> bytes:
    """The XML (UTF-8) of ``event``; ``source_id``: AuditSourceID (the box), ``own_aet``: its
    AE title, the other active participant."""
    when = datetime.datetime.fromtimestamp(event.at, datetime.UTC).isoformat(timespec="milliseconds")
    root = ET.Element("AuditMessage")
    ident = ET.SubElement(root, "EventIdentification", {
        "EventActionCode": event.action, "EventDateTime": when.replace("+00:00", "Z"),
        "EventOutcomeIndicator": str(event.outcome),
    })  # fmt: skip
    _code(ident, "EventID", EVENT_IDS.get(event.event, ("110100", "Application Activity")))
    if event.event == audit.USER_AUTHENTICATION:
        _code(ident, "EventTypeCode", LOGOUT if event.detail.startswith("logout") else LOGIN)
    if event.detail:
        ET.SubElement(ident, "EventOutcomeDescription").text = event.detail
    requestor = {"UserID": event.user_name or "(unknown)", "UserIsRequestor": "true"}
    if event.address:
        requestor |= {"NetworkAccessPointID": event.address, "NetworkAccessPointTypeCode": ACCESS_POINT_IP}
    ET.SubElement(root, "ActiveParticipant", requestor)
    ET.SubElement(root, "ActiveParticipant", {"UserID": own_aet, "AlternativeUserID": str(event.id),
                                              "UserIsRequestor": "false"})  # fmt: skip
    ET.SubElement(root, "AuditSourceIdentification", {"AuditSourceID": source_id})
    if event.study_uid:
        study = ET.SubElement(root, "ParticipantObjectIdentification", {
            "ParticipantObjectID": event.study_uid, "ParticipantObjectTypeCode": "2",
            "ParticipantObjectTypeCodeRole": "3",
        })  # fmt: skip
        _code(study, "ParticipantObjectIDTypeCode", STUDY_UID_TYPE)
    # The event's place in the trail: its id and chain hash, for `lightbox audit verify`.
    chained = ET.SubElement(root, "ParticipantObjectIdentification", {
        "ParticipantObjectID": f"{event.id}", "ParticipantObjectTypeCode": "4",
        "ParticipantObjectTypeCodeRole": "13",
    })  # fmt: skip
    ET.SubElement(chained, "ParticipantObjectIDTypeCode", {
        "csd-code": "lightbox-audit-chain", "codeSystemName": "Lightbox", "originalText": "audit chain",
    })  # fmt: skip
    detail = {"type": "chain-sha256", "value": base64.b64encode(bytes.fromhex(chain)).decode()}
    ET.SubElement(chained, "ParticipantObjectDetail", detail)
    # One line: syslog collectors escape line breaks inside a message.
    return b'<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode").encode()
