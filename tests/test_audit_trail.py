"""The audit trail: a hash chain that shows any edited, inserted or deleted event
(`lightbox audit verify`), the DICOM side's events, the retention, and the export as DICOM
audit messages (PS3.15 A.5) over syslog to a real collector (rsyslog) by UDP, TCP and TLS."""

from __future__ import annotations

import base64
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from pydicom import dcmread

from appliance.archive import Archive, audit
from support.collector import Collector, make_certificates
from support.dicomgen import make_study
from support.lightbox import LightboxProcess
from support.ports import free_port
from support.qr import add_node, findscu
from support.tools import dcmtk
from support.waiting import wait_for
from support.web import ADMIN, ADMIN_PASSWORD, Client, base_url, first_admin


def trail_with(data: Path, count: int) -> None:
    with Archive(data) as archive:
        for n in range(count):
            archive.audit.record(audit.EXPORT, f"user{n}", "10.0.0.7", study_uid=f"1.2.3.{n}", detail=f"event {n}")


def verify(data: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", "audit", "verify", "--data", str(data)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def tamper(data: Path, sql: str) -> None:
    with sqlite3.connect(data / "index.sqlite") as db:
        db.execute(sql)


def test_an_intact_trail_verifies(tmp_path: Path) -> None:
    trail_with(tmp_path, 5)
    result = verify(tmp_path)
    assert result.returncode == 0 and "intact: 5 events (#1 to #5)" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("sql", "broken_at", "why"),
    [
        ("UPDATE auditevent SET detail = 'nothing to see' WHERE id = 3", 3, "changed"),
        ("UPDATE auditevent SET at = at - 3600 WHERE id = 2", 2, "changed"),
        ("DELETE FROM auditevent WHERE id = 3", 4, "deleted"),
        ("DELETE FROM auditevent WHERE id <= 2", 3, "deleted"),
        ("INSERT INTO auditevent (id, at, event, action, outcome, user_name, address, study_uid, detail, chain)"
         " SELECT 6, at, event, action, outcome, 'mallory', address, study_uid, detail, chain FROM auditevent"
         " WHERE id = 5", 6, "changed"),
    ],
)  # fmt: skip
def test_tampering_is_found_and_located(tmp_path: Path, sql: str, broken_at: int, why: str) -> None:
    trail_with(tmp_path, 5)
    tamper(tmp_path, sql)
    result = verify(tmp_path)
    assert result.returncode == 1, result.stdout
    assert f"broken at event #{broken_at}" in result.stdout and why in result.stdout, result.stdout


def test_retention_keeps_the_chain_checkable(tmp_path: Path) -> None:
    trail_with(tmp_path, 6)
    with Archive(tmp_path) as archive:
        ten_days_later = time.time() + 10 * 86400
        assert archive.audit.prune(retention_days=5, now=ten_days_later, up_to_id=3) == 3  # #4 not exported: kept
        assert archive.audit.prune(retention_days=0) == 0  # 0: for ever
        archive.audit.record(audit.QUERY, "US1", "10.0.0.9", detail="after the retention")
    result = verify(tmp_path)
    assert result.returncode == 0 and "intact: 4 events (#4 to #7)" in result.stdout, result.stdout
    tamper(tmp_path, "DELETE FROM auditevent WHERE id = 4")
    assert "broken at event #5" in verify(tmp_path).stdout


def test_events_of_an_older_lightbox_are_sealed_when_opened(tmp_path: Path) -> None:
    trail_with(tmp_path, 3)
    tamper(tmp_path, "UPDATE auditevent SET chain = ''")  # as a Lightbox before the chain left them
    Archive(tmp_path).close()
    assert verify(tmp_path).returncode == 0


def events(server: LightboxProcess) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(f"file:{server.data / 'index.sqlite'}?mode=ro", uri=True) as db:
        return db.execute("SELECT event, action, study_uid, detail FROM auditevent ORDER BY id").fetchall()


@pytest.mark.slow
def test_dicom_side_events_are_in_the_trail(lightbox_factory, tmp_path: Path) -> None:
    server = lightbox_factory(called_aet_check="own", query_retrieve_from="any")
    files = make_study(tmp_path / "study", 3, patient_id="AUDIT-1")
    study_uid = str(dcmread(files[0]).StudyInstanceUID)
    assert server.storescu(*files).returncode == 0
    findscu(server, tmp_path / "found", "-S", "QueryRetrieveLevel=STUDY", "PatientID=AUDIT-1", "StudyInstanceUID")
    add_node(server, "GETSCU", 1, "get")
    (tmp_path / "got").mkdir()
    got = subprocess.run(
        [dcmtk("getscu"), "-aet", "GETSCU", "-aec", server.aet, "-S", "-k", "QueryRetrieveLevel=STUDY",
         "-k", f"StudyInstanceUID={study_uid}", "-od", str(tmp_path / "got"), "127.0.0.1", str(server.dicom_port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    for _ in range(3):  # a refused peer knocking again and again is one event a minute
        refused = subprocess.run(
            [dcmtk("echoscu"), "-aet", "PROBE", "-aec", "NOT-OURS", "127.0.0.1", str(server.dicom_port)],
            capture_output=True, timeout=30,
        )  # fmt: skip
        assert refused.returncode != 0
    time.sleep(0.5)
    trail = events(server)
    assert (audit.INSTANCES_TRANSFERRED, "C", study_uid, "3 images received") in trail
    queries = [e for e in trail if e[0] == audit.QUERY]
    assert len(queries) == 1 and "STUDY: ok, 1 results" in queries[0][3]
    sent = [e for e in trail if e[0] == audit.INSTANCES_TRANSFERRED and e[1] == "R"]
    assert sent == [
        (audit.INSTANCES_TRANSFERRED, "R", study_uid, "C-GET STUDY: 3 sent, 0 with warnings, 0 failed, 0 not tried")
    ]
    alerts = [e for e in trail if e[0] == audit.SECURITY_ALERT and "association refused" in e[3]]
    assert len(alerts) == 1 and "'NOT-OURS'" in alerts[0][3]
    assert verify(server.data).returncode == 0


CHAINED = re.compile(r"^(\S+) (\d+) <(\d+)>1 (\S+) (\S+) lightbox (\d+) DICOM\+RFC3881 - \ufeff?(<\?xml.*)$")


def parse(line: str) -> tuple[str, int, ET.Element]:
    found = CHAINED.match(line)
    assert found, line[:300]
    msgid, pri, header_pri = found.group(1), int(found.group(2)), int(found.group(3))
    assert msgid == "DICOM+RFC3881" and pri == header_pri == 85  # authpriv.notice, parsed as RFC 5424
    return msgid, pri, ET.fromstring(found.group(7).encode())


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_events_reach_the_collector_as_dicom_audit_messages(lightbox_factory, tmp_path: Path, transport: str) -> None:
    certificates = make_certificates(tmp_path / "pki") if transport == "tls" else None
    collector = Collector(tmp_path / "collector", transport, certificates)
    try:
        settings: dict[str, object] = {"audit_syslog": collector.url}
        if certificates:
            settings["audit_syslog_ca"] = certificates["ca"]
        server = lightbox_factory(**settings)
        first_admin(server)
        client = Client(base_url(server))
        assert client.post("/login", data={"name": ADMIN, "password": "wrong"}).status_code == 401
        assert client.post("/login", data={"name": ADMIN, "password": ADMIN_PASSWORD}).status_code == 303
        files = make_study(tmp_path / "study", 2, patient_id="AUDIT-2")
        assert server.storescu(*files).returncode == 0
        trail = events(server)
        received = [parse(line)[2] for line in collector.wait_for(len(trail))]
    finally:
        collector.stop()
    assert len(received) == len(trail)
    ids = [m.find("EventIdentification/EventID").get("csd-code") for m in received]  # type: ignore[union-attr]
    assert ids.count("110114") == 2 and "110104" in ids and "110100" in ids  # logins, transfer, setup
    failed_login = next(m for m in received if m.find("EventIdentification").get("EventOutcomeIndicator") == "4")  # type: ignore[union-attr]
    requestor = failed_login.find("ActiveParticipant")
    assert requestor is not None and requestor.get("UserID") == ADMIN
    assert requestor.get("NetworkAccessPointID") == "127.0.0.1"
    with sqlite3.connect(f"file:{server.data / 'index.sqlite'}?mode=ro", uri=True) as db:
        chains = dict(db.execute("SELECT id, chain FROM auditevent").fetchall())
    for message in received:  # each carries its place in the chain, to check the box against
        place = message.findall("ParticipantObjectIdentification")[-1]
        value = place.find("ParticipantObjectDetail").get("value")  # type: ignore[union-attr]
        assert base64.b64decode(value).hex() == chains[int(place.get("ParticipantObjectID"))]  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_collector_away_loses_nothing(lightbox_factory, tmp_path: Path) -> None:
    """Events recorded while the collector is down go out, in order, when it comes back."""
    port = free_port()
    server = lightbox_factory(audit_syslog=f"tcp://127.0.0.1:{port}")
    first_admin(server)
    assert Client(base_url(server)).post("/login", data={"name": ADMIN, "password": "wrong"}).status_code == 401
    wait_for(lambda: "audit_export_waiting" in server.log(), "the export waiting for its collector")
    collector = Collector(tmp_path / "collector", "tcp", port=port)
    try:
        trail = events(server)
        received = [parse(line)[2] for line in collector.wait_for(len(trail), timeout=60)]
    finally:
        collector.stop()
    places = [int(m.findall("ParticipantObjectIdentification")[-1].get("ParticipantObjectID")) for m in received]  # type: ignore[arg-type]
    assert places == list(range(1, len(trail) + 1))
    assert "audit_export_resumed" in server.log()
