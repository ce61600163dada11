"""HL7 orders and patient updates -> worklist items, after IHE Scheduled Workflow (RAD-2/3/4/12).

ORM^O01 and OMI^O23: each ORC (with the OBR, TQ1, IPC and ZDS after it) is one order; ORC-1
NW makes it (a resent NW for a known order changes it instead), XO changes it, CA, DC and OC
cancel it.  The order is found again by its Placer Order Number (ORC-2, else OBR-2), Filler
Order Number (ORC-3, else OBR-3) or Accession Number.  ADT^A08 changes the patient fields of
the patient's (PID-3) open items.  The field map is README's "Orders from a RIS/HIS (HL7)".
"""

from __future__ import annotations

import logging
import re
from typing import Any

import hl7

from appliance.archive import Archive, WorklistError
from appliance.hl7.message import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    TABLE_VALUE_NOT_FOUND,
    UNKNOWN_KEY,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    Refused,
    field,
)

LOG = logging.getLogger("lightbox.hl7")

ORDER_TYPES = {("ORM", "O01"), ("OMI", "O23")}
NEW, CHANGE, CANCEL = ("NW",), ("XO",), ("CA", "DC", "OC")
# HL7 table 0063 (NK1-3 relationship) -> DICOM Responsible Person Role (PS3.3 C.7.1.1.1.2).
ROLES = {"OWN": "OWNER", "PAR": "PARENT", "MTH": "PARENT", "FTH": "PARENT", "SPO": "SPOUSE", "CHD": "CHILD",
         "SIB": "SIBLING", "BRO": "SIBLING", "SIS": "SIBLING", "GRD": "GUARDIAN", "WRD": "GUARDIAN",
         "CGV": "CUSTODIAN", "EXF": "RELATIVE", "GRP": "RELATIVE", "AGT": "AGENT"}  # fmt: skip
_SEX = {"M": "M", "F": "F", "O": "O"}  # U (unknown), A, N: left empty
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_PATIENT_FIELDS = ("patient_name", "patient_id", "birth_date", "sex", "species", "breed",
                   "responsible_person", "responsible_person_role", "responsible_organization")  # fmt: skip


def handle(archive: Archive, message: hl7.Message) -> str:
    """Act on ``message``; the text of its AA (raises Refused for an AE or AR)."""
    msh = message.segment("MSH")
    kind, event = field(msh, 9, 1).upper(), field(msh, 9, 2).upper()
    if (kind, event) in ORDER_TYPES:
        return _orders(archive, message)
    if kind == "ADT" and event == "A08":
        return _patient_update(archive, message)
    if kind in ("ORM", "OMI", "ADT"):
        raise Refused("AR", UNSUPPORTED_EVENT_CODE, f"{kind}^{event} is not taken: ORM^O01, OMI^O23, ADT^A08 are")
    raise Refused("AR", UNSUPPORTED_MESSAGE_TYPE, f"message type {kind}^{event} is not taken")


def _segments(message: hl7.Message) -> list[tuple[str, Any]]:
    return [(str(segment[0][0]).upper(), segment) for segment in message]


def _orders(archive: Archive, message: hl7.Message) -> str:
    segments = _segments(message)
    patient = _patient(segments)
    groups: list[dict[str, Any]] = []
    for name, segment in segments:
        if name == "ORC":
            groups.append({"ORC": segment})
        elif groups and name in ("OBR", "TQ1", "IPC", "ZDS") and name not in groups[-1]:
            groups[-1][name] = segment  # the first of each: IPC repeats per step; one step per item here
    if not groups or any("OBR" not in group for group in groups):
        raise Refused("AE", REQUIRED_FIELD_MISSING, "an order needs an ORC segment and an OBR after it")
    done: list[str] = []
    for number, group in enumerate(groups, 1):
        try:
            done.append(_order(archive, patient, group, _referring(segments)))
        except Refused as refused:
            if len(groups) > 1:  # those before it stay done: say which one was refused
                refused.reason = f"order {number} of {len(groups)}: {refused.reason}"
            raise
    return "; ".join(done)


def _order(archive: Archive, patient: dict[str, str], group: dict[str, Any], referring: str) -> str:
    orc, obr = group["ORC"], group["OBR"]
    control = field(orc, 1).upper()
    fields = {**patient, **_procedure(group), "referring_physician": referring}
    fields["placer_order"] = field(orc, 2) or field(obr, 2)
    fields["filler_order"] = field(orc, 3) or field(obr, 3)
    keys = {"placer": fields["placer_order"], "filler": fields["filler_order"], "accession": fields["accession"]}
    if not any(keys.values()):
        raise Refused("AE", REQUIRED_FIELD_MISSING, "an order needs a placer or filler order number (ORC-2, ORC-3)")
    study_uid = field(group["IPC"], 3) if "IPC" in group else field(group["ZDS"], 1) if "ZDS" in group else ""
    if study_uid and (len(study_uid) > 64 or not _UID.fullmatch(study_uid)):
        raise Refused("AE", DATA_TYPE_ERROR, "the Study Instance UID (IPC-3 or ZDS-1) is not a valid UID")
    known = archive.worklist.by_order(**keys)
    given = {name: value for name, value in fields.items() if value}  # a change keeps what it does not carry
    try:
        if control in NEW and (known is None or known["state"] == "CANCELLED"):
            item = archive.worklist.create(fields, study_uid)
            return _done("created", item)
        if control in NEW + CHANGE:
            if known is None:
                raise Refused("AE", UNKNOWN_KEY, "order change (XO) for an order Lightbox does not have")
            return _done("changed", archive.worklist.update(known["id"], given))
        if control in CANCEL:
            if known is None:
                raise Refused("AE", UNKNOWN_KEY, f"order cancel ({control}) for an order Lightbox does not have")
            return _done("cancelled", archive.worklist.cancel(known["id"]))
    except WorklistError as exc:  # a value the worklist cannot keep: its message names the field
        raise Refused("AE", DATA_TYPE_ERROR, _without_value(exc)) from None
    raise Refused("AR", TABLE_VALUE_NOT_FOUND, f"order control ORC-1 {control!r} is not taken: NW, XO, CA, DC, OC are")


def _without_value(exc: WorklistError) -> str:
    """The worklist's reason without the value it quotes (a name may be in it: not for the log)."""
    name, _, rest = str(exc).partition(": ")
    return f"{name}: not a valid value" if rest.endswith("is not a valid value") else str(exc)


def _done(what: str, item: dict[str, Any]) -> str:
    LOG.info("hl7_order %s item=%d state=%s accession=%s", what, item["id"], item["state"], item["accession"])
    return f"order {what}: worklist item {item['id']}, accession {item['accession']}"


def _patient_update(archive: Archive, message: hl7.Message) -> str:
    patient = _patient(_segments(message))
    if not patient["patient_id"]:
        raise Refused("AE", REQUIRED_FIELD_MISSING, "ADT^A08 needs a patient ID (PID-3)")
    items = archive.worklist.open_for_patient(patient["patient_id"])
    try:
        for item in items:
            archive.worklist.update(item["id"], {name: value for name, value in patient.items() if value})
    except WorklistError as exc:
        raise Refused("AE", DATA_TYPE_ERROR, _without_value(exc)) from None
    LOG.info("hl7_patient_update items=%d", len(items))
    return f"patient updated on {len(items)} open worklist item(s)"


def _patient(segments: list[tuple[str, Any]]) -> dict[str, str]:
    """PID (and NK1: the owner of an animal, or a person responsible for the patient)."""
    pid = next((segment for name, segment in segments if name == "PID"), None)
    if pid is None:
        raise Refused("AE", REQUIRED_FIELD_MISSING, "the message has no PID segment")
    birth = field(pid, 7)[:8]
    fields = {
        "patient_id": field(pid, 3),
        "patient_name": _person(pid, 5),
        "birth_date": birth if len(birth) == 8 else "",  # a year or month alone is no DICOM date
        "sex": _SEX.get(field(pid, 8).upper(), ""),
        "species": field(pid, 35, 2) or field(pid, 35, 1),  # CWE: the text, else the code
        "breed": field(pid, 36, 2) or field(pid, 36, 1),
    }
    if not (fields["patient_id"] or fields["patient_name"]):
        raise Refused("AE", REQUIRED_FIELD_MISSING, "the PID segment has neither a patient ID nor a name")
    kin = [segment for name, segment in segments if name == "NK1" and field(segment, 3).upper() in ROLES]
    kin.sort(key=lambda segment: field(segment, 3).upper() != "OWN")  # the owner first
    if kin:
        fields["responsible_person"] = _person(kin[0], 2)
        fields["responsible_person_role"] = ROLES[field(kin[0], 3).upper()]
        fields["responsible_organization"] = field(kin[0], 13)  # NK1-13 Organization Name (a farm, a breeder)
    return fields


def _person(segment: Any, number: int) -> str:
    """An XPN (family^given^middle^suffix^prefix) as a DICOM PN (family^given^middle^prefix^suffix)."""
    family, given, middle, suffix, prefix = (field(segment, number, n) for n in range(1, 6))
    return "^".join((family, given, middle, prefix, suffix)).rstrip("^")


def _referring(segments: list[tuple[str, Any]]) -> str:
    """PV1-8 Referring Doctor, else OBR-16 Ordering Provider (XCN: ID^family^given^middle^suffix^prefix)."""
    for name, number in (("PV1", 8), ("OBR", 16)):
        for segment_name, segment in segments:
            if segment_name == name:
                parts = [field(segment, number, n) for n in (2, 3, 4, 6, 5)]
                if any(parts):
                    return "^".join(parts).rstrip("^")
    return ""


def _procedure(group: dict[str, Any]) -> dict[str, str]:
    """The Requested Procedure and its Scheduled Procedure Step: IPC (OMI) where present, else the
    OBR fields IHE gives them in ORM (OBR-18 Accession Number, OBR-19 Requested Procedure ID,
    OBR-20 Scheduled Procedure Step ID, OBR-24 modality)."""
    obr, ipc = group["OBR"], group.get("IPC")
    start = (field(group["TQ1"], 7) if "TQ1" in group else "") or field(obr, 27, 4) or field(group["ORC"], 7, 4)
    start = re.sub(r"[^0-9].*", "", start or field(obr, 36))  # no fraction or time zone
    time = start[8:10] + "00" if len(start) == 10 else start[8:14] if len(start) >= 14 else start[8:12]  # HH: HH00
    return {
        "accession": (field(ipc, 1) if ipc else "") or field(obr, 18),
        "requested_procedure_id": (field(ipc, 2) if ipc else "") or field(obr, 19),
        "step_id": (field(ipc, 4) if ipc else "") or field(obr, 20),
        "modality": (field(ipc, 5) if ipc else "") or field(obr, 24),
        "station_aet": field(ipc, 9) if ipc else "",
        "requested_procedure_description": field(obr, 4, 2) or field(obr, 4, 1),
        "step_description": field(obr, 4, 5),
        "start_date": start[:8],
        "start_time": time,
    }
