"""Orders from a RIS over HL7 v2: real MLLP over TCP with the `hl7` library's own senders
(MLLPClient, and its asyncio connection for another source address), the worklist seen by
DCMTK `findscu -W` and a pynetdicom SCU, images sent with DCMTK storescu."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import hl7
import pytest
from hl7.client import MLLPClient
from hl7.mllp import open_hl7_connection
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from test_mpps import MPPS, ended, started
from test_worklist import findscu_w

from bench.worklists import WORKLIST_MODEL
from support.ports import free_port
from support.waiting import wait_for
from support.web import send_study

DAY = (date.today() + timedelta(days=1)).strftime("%Y%m%d")


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"hl7_port": free_port(), "hl7_allowed_addresses": "127.0.0.1, 10.9.0.0/16", "query_retrieve_from": "any"}


def segment(name: str, values: dict[int, str]) -> str:
    return "|".join([name, *(values.get(n, "") for n in range(1, max(values) + 1))])


def message(kind: str, control: str, *segments: str, charset: str = "") -> str:
    msh = segment("MSH", {1: "^~\\&", 2: "RIS", 3: "CLINIC", 4: "LIGHTBOX", 6: "20261207120000", 8: kind,
                          9: control, 10: "P", 11: "2.5", 17: charset})  # fmt: skip
    return "\r".join([msh, *segments])


def pid(patient_id: str, name: str, birth: str = "19800102", sex: str = "F", species: str = "", breed: str = "") -> str:
    return segment("PID", {1: "1", 3: f"{patient_id}^^^RIS", 5: name, 7: birth, 8: sex, 35: species, 36: breed})


def orm(order: str, control: str, placer: str, patient: str, start: str = f"{DAY}0930", accession: str = "",
        extra: tuple[str, ...] = (), kind: str = "ORM^O01", charset: str = "", **obr: str) -> str:  # fmt: skip
    obr_fields = {1: "1", 2: placer, 3: "F" + placer, 4: "US-ABD^Abdomen ultrasound", 18: accession, 24: "US",
                  27: f"^^^{start}"}  # fmt: skip
    obr_fields.update({int(k[1:]): v for k, v in obr.items()})
    return message(kind, control, patient, segment("PV1", {1: "1", 2: "O", 8: "1234^Welby^Marcus"}),
                   segment("ORC", {1: order, 2: placer, 3: "F" + placer, 5: "SC"}), *extra,
                   segment("OBR", obr_fields), charset=charset)  # fmt: skip


def send(server, text: str, encoding: str = "utf-8") -> hl7.Message:
    with MLLPClient("127.0.0.1", server.hl7_port, encoding=encoding) as client:
        return reply(client.send_message(text))


def reply(raw: bytes) -> hl7.Message:
    return hl7.parse(raw.strip(b"\x0b\x1c\r").decode("ascii"))


def acknowledged(answer: hl7.Message) -> tuple[str, str]:
    return str(answer["MSA.1"]), str(answer["MSA.3"])


def worklist(server, tmp_path, **keys: str) -> list[Dataset]:
    return findscu_w(server.dicom_port, server.aet, tmp_path, {"StudyInstanceUID": "", "ReferringPhysicianName": "",
                                                               **keys})  # fmt: skip


@pytest.fixture(scope="module")
def port(server) -> int:
    server.hl7_port = server.settings["hl7_port"]
    return server.hl7_port


def test_order_life_cycle(server, port, admin, tmp_path):
    answer = send(server, orm("NW", "PL1", "PL1", pid("H1", "Doe^Jane^Q"), accession="HACC1"))
    assert acknowledged(answer)[0] == "AA", str(answer)
    assert str(answer["MSA.2"]) == "PL1"  # the order message's control ID
    (item,) = worklist(server, tmp_path / "new", PatientID="H1")
    step = item.ScheduledProcedureStepSequence[0]
    assert (str(item.PatientName), item.AccessionNumber, str(item.ReferringPhysicianName)) == (
        "Doe^Jane^Q", "HACC1", "Welby^Marcus")  # fmt: skip
    assert (step.Modality, step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "US", DAY, "0930")  # fmt: skip
    # the RIS resends (it missed the ACK): the same order, not a second one
    assert acknowledged(send(server, orm("NW", "PL1-again", "PL1", pid("H1", "Doe^Jane^Q"))))[0] == "AA"
    assert len(worklist(server, tmp_path / "resent", PatientID="H1")) == 1
    # the images arrive with the order's Study Instance UID and accession: tied to it
    study_uid = send_study(server, tmp_path / "images", 2, study_uid=item.StudyInstanceUID, patient_id="H1",
                           patient_name="Doe^Jane^Q", AccessionNumber="HACC1")  # fmt: skip
    (shown,) = admin.get(f"/api/studies/{study_uid}").json()["orders"]
    assert (shown["accession"], shown["placer_order"], shown["images"]) == ("HACC1", "PL1", 2)
    # another order, cancelled: modalities no longer see it
    assert acknowledged(send(server, orm("NW", "PL2", "PL2", pid("H2", "Roe^Rita"))))[0] == "AA"
    assert len(worklist(server, tmp_path / "second", PatientID="H2")) == 1
    assert acknowledged(send(server, orm("CA", "PL2-ca", "PL2", pid("H2", "Roe^Rita"))))[0] == "AA"
    assert worklist(server, tmp_path / "cancelled", PatientID="H2") == []
    # a change: a new time
    assert (
        acknowledged(send(server, orm("XO", "PL1-xo", "PL1", pid("H1", "Doe^Jane^Q"), start=f"{DAY}1400")))[0] == "AA"
    )
    (changed,) = worklist(server, tmp_path / "changed", PatientID="H1")
    assert changed.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime == "1400"
    assert changed.AccessionNumber == "HACC1" and changed.StudyInstanceUID == item.StudyInstanceUID
    # ADT^A08: the patient's new name on her open orders
    adt = message("ADT^A08", "ADT1", segment("EVN", {1: "A08"}), pid("H1", "Doe-Smith^Jane^Q"))
    assert acknowledged(send(server, adt)) == ("AA", "patient updated on 1 open worklist item(s)")
    (renamed,) = worklist(server, tmp_path / "renamed", PatientID="H1")
    assert str(renamed.PatientName) == "Doe-Smith^Jane^Q"
    # an unknown order cannot be changed or cancelled
    answer = send(server, orm("XO", "PL9-xo", "PL9", pid("H9", "Nobody^Known")))
    assert acknowledged(answer)[0] == "AE" and str(answer["ERR.3.1"]) == "204"
    # the modality reports the exam done (MPPS): the order is done and leaves the worklist
    ae = AE(ae_title="US1")
    ae.add_requested_context(MPPS)
    mpps = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert mpps.is_established
    step_uid = generate_uid()  # the modality names its step
    try:
        status, _ = mpps.send_n_create(started(item.StudyInstanceUID, "HACC1"), MPPS, step_uid)
        assert status.Status == 0x0000
        assert admin.get(f"/api/studies/{study_uid}").json()["orders"][0]["state"] == "IN PROGRESS"
        status, _ = mpps.send_n_set(ended("COMPLETED"), MPPS, step_uid)
    finally:
        mpps.release()
    assert status.Status == 0x0000
    assert admin.get(f"/api/studies/{study_uid}").json()["orders"][0]["state"] == "COMPLETED"
    assert worklist(server, tmp_path / "done", PatientID="H1") == []


def test_veterinary_order_over_omi_with_ipc(server, port):
    study_uid = "1.2.826.0.1.3680043.10.543.77"
    ipc = segment("IPC", {1: "VACC1", 2: "VRP1", 3: study_uid, 4: "VSPS1", 5: "DX", 9: "DXROOM1"})
    owner = segment("NK1", {1: "1", 2: "Smith^John", 3: "OWN^Owner^HL70063", 13: "Happy Paws Kennels"})
    patient = pid("V1", "Rex", birth="2019", sex="M", species="CANINE^Canine^L", breed="^Beagle")
    tq1 = segment("TQ1", {1: "1", 7: f"{DAY}101500"})
    answer = send(server, orm("NW", "VPL1", "VPL1", patient, extra=(owner,), kind="OMI^O23").replace(
        "\rOBR|", f"\r{tq1}\rOBR|") + "\r" + ipc)  # fmt: skip
    assert acknowledged(answer)[0] == "AA", str(answer)
    query = Dataset()
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "PatientSpeciesDescription",
                    "PatientBreedDescription", "ResponsiblePerson", "ResponsiblePersonRole",
                    "ResponsibleOrganization", "AccessionNumber", "RequestedProcedureID", "StudyInstanceUID"):  # fmt: skip
        setattr(query, keyword, "")
    query.PatientID = "V1"
    query.ScheduledProcedureStepSequence = [Dataset()]
    step_keys = ("Modality", "ScheduledStationAETitle", "ScheduledProcedureStepID", "ScheduledProcedureStepStartTime")
    for keyword in step_keys:
        setattr(query.ScheduledProcedureStepSequence[0], keyword, "")
    ae = AE(ae_title="PYWL")
    ae.add_requested_context(WORKLIST_MODEL)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    try:
        found = [ds for status, ds in assoc.send_c_find(query, WORKLIST_MODEL) if status.Status == 0xFF00]
    finally:
        assoc.release()
    (item,) = found
    assert (str(item.PatientName), item.PatientBirthDate, item.PatientSex) == ("Rex", "", "M")
    assert (item.PatientSpeciesDescription, item.PatientBreedDescription) == ("Canine", "Beagle")
    assert (str(item.ResponsiblePerson), item.ResponsiblePersonRole, item.ResponsibleOrganization) == (
        "Smith^John", "OWNER", "Happy Paws Kennels")  # fmt: skip
    assert (item.AccessionNumber, item.RequestedProcedureID, item.StudyInstanceUID) == ("VACC1", "VRP1", study_uid)
    step = item.ScheduledProcedureStepSequence[0]
    assert [step.get(k) for k in step_keys] == ["DX", "DXROOM1", "VSPS1", "101500"]


@pytest.mark.parametrize(("charset", "codec"), [("8859/1", "iso8859-1"), ("UNICODE UTF-8", "utf-8"),
                                                ("", "utf-8"), ("", "iso8859-1")])  # fmt: skip
def test_character_sets(server, port, tmp_path, charset, codec):
    patient_id = f"C-{charset or 'none'}-{codec}".replace(" ", "").replace("/", "")
    text = orm("NW", patient_id, patient_id, pid(patient_id, "Gärtner^Jörg"), charset=charset)
    assert acknowledged(send(server, text, encoding=codec))[0] == "AA"
    (item,) = worklist(
        server, tmp_path / "rsp", PatientID=patient_id, PatientName="", SpecificCharacterSet="ISO_IR 192"
    )
    assert str(item.PatientName) == "Gärtner^Jörg"


def test_bad_messages_are_refused_and_the_listener_keeps_serving(server, port):
    order = orm("NW", "NOPID", "NOPID", pid("X", "X")).split("\r")
    order_without_pid = "\r".join(line for line in order if not line.startswith("PID"))
    cases = [
        (b"hello, this is not HL7", "AR", "102"),
        (order_without_pid.encode(), "AE", "101"),
        (message("ORU^R01", "ORU1", pid("H1", "Doe^Jane")).encode(), "AR", "200"),
        (orm("ZZ", "BADCTRL", "BC1", pid("H3", "Poe^Ed")).encode(), "AR", "103"),
        (message("ORM^O01", "CS1", pid("H3", "Poe^Ed"), charset="KLINGON").encode(), "AR", "103"),
        (b"A" * (1 << 20) + message("ADT^A08", "BIG", pid("H1", "Doe^Jane")).encode(), "AR", "102"),
    ]
    with MLLPClient("127.0.0.1", server.hl7_port) as client:  # one connection: it stays open
        for raw, code, error in cases:
            answer = reply(client.send_message(raw))
            assert (str(answer["MSA.1"]), str(answer["ERR.3.1"])) == (code, error), raw[:60]
            if b"MSH|" in raw[:10]:  # read far enough for its control ID
                assert str(answer["MSA.2"]) and f"|{answer['MSA.2']}|" in raw.decode(), raw[:60]
        good = message("ADT^A08", "GOOD", pid("H404", "Nobody^There"))
        assert acknowledged(reply(client.send_message(good))) == ("AA", "patient updated on 0 open worklist item(s)")
    log = server.log()
    assert "hl7_message" in log and "ack=AR" in log
    assert "Doe" not in log and "Gärtner" not in log and "Poe" not in log  # no patient data in the log


def test_an_order_of_several_refused_names_which(server, port, tmp_path):
    first = orm("NW", "TWO", "PLM1", pid("M1", "Two^Orders")).split("\r")
    second = orm("XO", "TWO", "PLM-UNKNOWN", pid("M1", "Two^Orders")).split("\r")[-2:]  # its ORC and OBR
    answer = send(server, "\r".join(first + second))
    assert acknowledged(answer) == ("AE", "order 2 of 2: order change (XO) for an order Lightbox does not have")
    assert len(worklist(server, tmp_path / "rsp", PatientID="M1")) == 1  # the first one stays


def test_an_address_not_allowed_is_refused(server, port):
    async def from_another_address() -> bytes:
        reader, writer = await open_hl7_connection("127.0.0.1", server.hl7_port, local_addr=("127.0.0.2", 0))
        writer.writemessage(hl7.parse(message("ADT^A08", "OTHER", pid("H1", "Doe^Jane"))))
        try:
            return await asyncio.wait_for(reader.readblock(), 10)
        except (asyncio.IncompleteReadError, ConnectionError):
            return b""
        finally:
            writer.close()

    assert asyncio.run(from_another_address()) == b""
    assert "hl7_refused peer=127.0.0.2 reason=not in hl7_allowed_addresses" in server.log()
    assert acknowledged(send(server, message("ADT^A08", "SAME", pid("H404", "X"))))[0] == "AA"  # 127.0.0.1 may


def test_connections_beyond_the_limit_are_closed(server, port):
    from appliance.hl7.listener import MAX_CONNECTIONS

    held = [MLLPClient("127.0.0.1", server.hl7_port) for _ in range(MAX_CONNECTIONS)]
    try:
        for client in held:  # each answered: all of them are being served
            assert acknowledged(reply(client.send_message(message("ADT^A08", "HELD", pid("H404", "X")))))[0] == "AA"
        with MLLPClient("127.0.0.1", server.hl7_port) as extra:
            try:
                answer = extra.send_message(message("ADT^A08", "EXTRA", pid("H404", "X")))
            except ConnectionError:
                answer = b""
            assert answer == b""
    finally:
        for client in held:
            client.close()
    assert f"reason={MAX_CONNECTIONS} connections already" in server.log()

    def served_again() -> bool:  # once the server has seen the held connections close
        try:
            return acknowledged(send(server, message("ADT^A08", "AFTER", pid("H404", "X"))))[0] == "AA"
        except (ConnectionError, ValueError, IndexError, KeyError):
            return False

    wait_for(served_again, "a connection served once the others closed")
