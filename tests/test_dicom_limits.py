"""The DICOM door's limits against a hostile peer on the LAN, each probe bounded in count and time:
slow and idle peers, one address taking every slot, oversize PDUs, killed workers, abandoned
C-STOREs.  The attacker connects from 127.0.0.2 (the loopback network is 127/8), the modality
(DCMTK's echoscu) from 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import pytest

from appliance.dicom import dimse, pdu
from appliance.dicom.syntaxes import IMPLICIT_LE, VERIFICATION_CLASS
from bench.procstat import descendants, peak_rss_bytes

ATTACKER = "127.0.0.2"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def connect(port: int, source: str = ATTACKER) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(20)
    sock.connect(("127.0.0.1", port))
    return sock


def read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    header = recv_exactly(sock, 6)
    pdu_type, length = pdu.HEADER.unpack(header)
    return pdu_type, recv_exactly(sock, length)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def associate(port: int, source: str = ATTACKER, calling: str = "ATTACKER") -> tuple[socket.socket, int]:
    """A raw association proposing verification and CT storage: (socket, PDU type answered)."""
    sock = connect(port, source)
    contexts = [
        pdu.ProposedContext(1, VERIFICATION_CLASS, [IMPLICIT_LE]),
        pdu.ProposedContext(3, CT_IMAGE, [IMPLICIT_LE]),
    ]
    sock.sendall(pdu.associate_rq("LIGHTBOX", calling, contexts, 16384, "1.2.3.4", "PROBE"))
    answer, _ = read_pdu(sock)
    return sock, answer


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` (after an A-ABORT or not) within ``seconds``."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def workers_of(pid: int) -> list[int]:
    return descendants(pid)[1:]


def threads(pid: int) -> int:
    """Threads of the service: the main process and its workers."""
    total = 0
    for p in [pid, *workers_of(pid)]:
        with suppress(FileNotFoundError):
            total += len(os.listdir(f"/proc/{p}/task"))
    return total


def echo_ok(server) -> bool:
    result = server.echoscu()
    return result.returncode == 0


def c_store_rq(message_id: int, instance: str) -> bytes:
    return dimse.encode({
        dimse.AFFECTED_SOP_CLASS: CT_IMAGE, dimse.COMMAND_FIELD: dimse.C_STORE_RQ, dimse.MESSAGE_ID: message_id,
        dimse.PRIORITY: 0, dimse.DATASET_TYPE: dimse.HAS_DATASET, dimse.AFFECTED_SOP_INSTANCE: instance,
    })  # fmt: skip


@contextmanager
def held(count: int, open_one) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = open_one()
            stack.callback(sock.close)
            socks.append(sock)
        yield socks


# -- 1. slow and idle peers ---------------------------------------------------------------


@pytest.mark.slow
def test_idle_connections_take_no_slot_and_no_thread(lightbox_factory):
    """300 TCP connections that never send an A-ASSOCIATE-RQ: a modality still gets in, the
    service's threads stay few, and the silent sockets are dropped after associate_timeout."""
    server = lightbox_factory(max_associations=4, associate_timeout=3, max_pending_connections=400)
    before = threads(server.proc.pid)
    with held(300, lambda: connect(server.dicom_port)) as idle:
        time.sleep(0.5)
        during = threads(server.proc.pid)
        assert echo_ok(server), server.log()[-2000:]
        assert during - before < 20, (before, during)
        assert closed_within(idle[-1], 20)  # the newest too, after associate_timeout
    assert echo_ok(server)


def test_a_flood_of_waiting_connections_evicts_its_own(lightbox_factory):
    """More silent connections than may wait: the oldest of the flooding address go first; a
    modality connecting meanwhile from another address is served."""
    server = lightbox_factory(max_pending_connections=8, dicom_workers=0)
    with held(60, lambda: connect(server.dicom_port)) as idle:
        assert echo_ok(server), server.log()[-2000:]
        assert closed_within(idle[0], 5), "the oldest waiting connection was kept"
        assert not closed_within(idle[-1], 0.5), "the newest waiting connection was dropped at once"
    assert "too many waiting connections" in server.log()


def test_one_address_cannot_take_every_slot(lightbox_factory):
    """Associations from one address get at most their share; one from another gets in."""
    server = lightbox_factory(max_associations=4)  # a share of 2 per address by default
    answers = []
    with ExitStack() as stack:
        for _ in range(4):
            sock, answer = associate(server.dicom_port)
            stack.callback(sock.close)
            answers.append(answer)
        assert answers == [pdu.ASSOCIATE_AC] * 2 + [pdu.ASSOCIATE_RJ] * 2
        assert echo_ok(server), server.log()[-2000:]
    assert "reason=address_share" in server.log()


def refused_called_ae(port: int) -> socket.socket:
    """A raw A-ASSOCIATE-RQ calling an AE title not Lightbox's, its A-ASSOCIATE-RJ read; left open."""
    sock = connect(port)
    contexts = [pdu.ProposedContext(1, VERIFICATION_CLASS, [IMPLICIT_LE])]
    sock.sendall(pdu.associate_rq("NOTOURS", "ATTACKER", contexts, 16384, "1.2.3.4", "PROBE"))
    answer, body = read_pdu(sock)
    assert (answer, body[1:4]) == (pdu.ASSOCIATE_RJ, bytes((1, 1, 7))), (answer, body)
    return sock


def test_refused_connections_wait_for_the_peer_to_close_then_the_artim_timer(lightbox_factory):
    """After an A-ASSOCIATE-RJ Lightbox leaves the close to the peer (PS3.8 Sta13), without a
    thread or a slot: up to associate_timeout (the ARTIM timer), and no more such connections
    than max_pending_connections, the oldest of the busiest address closed first."""
    server = lightbox_factory(called_aet_check="own", associate_timeout=3, max_pending_connections=4, dicom_workers=0)
    with held(8, lambda: refused_called_ae(server.dicom_port)) as refused:
        assert closed_within(refused[0], 1), "more refused connections were kept than may wait"
        assert not closed_within(refused[-1], 0.5), "a refused connection was closed before the peer closed it"
        assert echo_ok(server), server.log()[-2000:]  # a modality gets in meanwhile
        assert all(closed_within(sock, 3 + 5) for sock in refused[4:]), "kept past associate_timeout"
        assert echo_ok(server)
    baseline = fds(server.proc.pid)
    refused_called_ae(server.dicom_port).close()  # the usual end: Lightbox closes once the peer has
    deadline = time.monotonic() + 2  # well within associate_timeout
    while fds(server.proc.pid) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fds(server.proc.pid) <= baseline, "a refused connection was kept after the peer closed it"
    assert server.log().count("called_ae_not_ours") == 9


@pytest.mark.slow
def test_idle_association_is_closed(lightbox_factory):
    server = lightbox_factory(idle_timeout=2)
    sock, answer = associate(server.dicom_port)
    with sock:
        assert answer == pdu.ASSOCIATE_AC
        assert closed_within(sock, 20), "an idle association was kept open"
    assert "idle" in server.log()


@pytest.mark.slow
def test_trickled_pdu_is_cut_by_its_deadline(lightbox_factory):
    """A P-DATA-TF sent one byte every half second: each recv() is quick, the PDU never ends;
    it is cut once network_timeout has passed since it began."""
    server = lightbox_factory(network_timeout=2, idle_timeout=30)
    sock, answer = associate(server.dicom_port)
    with sock:
        assert answer == pdu.ASSOCIATE_AC
        sock.sendall(struct.pack(">BxLLBB", pdu.P_DATA_TF, 1000, 994, 1, pdu.COMMAND | pdu.LAST))
        cut = False
        for _ in range(40):  # 20 s at most
            try:
                sock.sendall(b"\x00")
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            if closed_within(sock, 0.5):
                cut = True
                break
        assert cut, "a PDU trickled byte by byte was never cut"


@pytest.mark.slow
def test_slow_peers_from_one_address_do_not_shut_out_a_modality(lightbox_factory):
    """The probe of issue 14: associations trickling bytes plus idle sockets, all from one
    address, with the default timeouts; a C-ECHO from another gets in every time."""
    server = lightbox_factory(max_associations=16)
    with ExitStack() as stack:
        trickling = []
        for _ in range(16):
            sock, answer = associate(server.dicom_port)
            stack.callback(sock.close)
            if answer == pdu.ASSOCIATE_AC:
                sock.sendall(struct.pack(">BxLLBB", pdu.P_DATA_TF, 1000, 994, 1, pdu.COMMAND | pdu.LAST))
                trickling.append(sock)
        for _ in range(200):
            stack.callback(connect(server.dicom_port).close)
        assert len(trickling) == 8
        for _ in range(6):
            for sock in trickling:
                with suppress(OSError):
                    sock.sendall(b"\x00")
            assert echo_ok(server), server.log()[-2000:]
            time.sleep(5)
        assert threads(server.proc.pid) < 60


# -- 2. PDU size caps -----------------------------------------------------------------------


def test_oversize_release_body_is_aborted_unread(lightbox_factory):
    """An A-RELEASE-RQ declaring 512 MiB: an A-ABORT, one log line, and the process does not
    buffer what follows."""
    server = lightbox_factory(dicom_workers=0)
    pid = server.proc.pid
    before = peak_rss_bytes(pid) // 1024
    sock, answer = associate(server.dicom_port)
    with sock:
        assert answer == pdu.ASSOCIATE_AC
        sock.sendall(struct.pack(">BxL", pdu.RELEASE_RQ, 512 << 20))
        sent, chunk = 0, bytes(1 << 20)
        with suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
            while sent < 512 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        assert sent < 512 << 20, "the whole body was taken in"
        with suppress(OSError):
            sock.settimeout(10)
            pdu_type, _ = read_pdu(sock)
            assert pdu_type == pdu.ABORT
    assert peak_rss_bytes(pid) // 1024 - before < 32 * 1024
    assert len(re.findall(r"association_aborted .*A-RELEASE-RQ of \d+ bytes", server.log())) == 1
    assert echo_ok(server)


@pytest.mark.parametrize("pdu_type", [pdu.ABORT, pdu.P_DATA_TF])
def test_oversize_pdus_are_refused(lightbox_factory, pdu_type):
    server = lightbox_factory(dicom_workers=0, max_pdu=65536, associate_timeout=3)
    sock, answer = associate(server.dicom_port)
    with sock:
        assert answer == pdu.ASSOCIATE_AC
        sock.sendall(struct.pack(">BxL", pdu_type, 8 << 20))
        sock.settimeout(10)
        got, _ = read_pdu(sock)
        assert got == pdu.ABORT
        assert closed_within(sock, 10)  # the peer never closes: after associate_timeout (ARTIM)
    assert echo_ok(server)


# -- 3. a killed worker gives its slots back ------------------------------------------------


@pytest.mark.slow  # kill -9 and restarts
def test_killed_workers_give_their_slots_back(lightbox_factory):
    server = lightbox_factory(max_associations=4, max_associations_per_address=4, dicom_workers=2)
    for _ in range(3):
        workers = set(workers_of(server.proc.pid))
        with ExitStack() as stack:
            for _ in range(4):
                sock, answer = associate(server.dicom_port)
                stack.callback(sock.close)
                assert answer == pdu.ASSOCIATE_AC
            for worker in workers:
                os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(set(workers_of(server.proc.pid)) - workers) < 2:
            time.sleep(0.2)
    with ExitStack() as stack:  # the whole cap again, with no client holding anything
        for _ in range(4):
            sock, answer = associate(server.dicom_port)
            stack.callback(sock.close)
            assert answer == pdu.ASSOCIATE_AC, server.log()[-3000:]
    assert echo_ok(server)


# -- 4. abandoned C-STOREs leave nothing behind --------------------------------------------


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def abandon_c_store(port: int, cycle: int) -> None:
    """A C-STORE-RQ and a first fragment, then: a new command, an A-ABORT, or a close."""
    sock, answer = associate(port)
    with sock:
        assert answer == pdu.ASSOCIATE_AC
        sock.sendall(pdu.p_data(3, pdu.COMMAND | pdu.LAST, c_store_rq(1, f"1.2.3.{cycle}")))
        sock.sendall(pdu.p_data(3, 0, bytes(4096)))  # a fragment, not the last
        ending = cycle % 3
        if ending == 0:
            sock.sendall(pdu.p_data(1, pdu.COMMAND | pdu.LAST, dimse.echo_request(2, VERIFICATION_CLASS)))
            assert read_pdu(sock)[0] == pdu.ABORT  # then the peer closes, as PS3.8 has it
        elif ending == 1:
            sock.sendall(pdu.abort(0, 0))


@pytest.mark.slow
def test_abandoned_c_stores_leave_no_spool_file_or_descriptor(lightbox_factory):
    """Counted in the one worker process, where nothing but the DICOM door runs.  One
    association at a time (each cycle waits for its thread to end): SQLite keeps a closed
    connection's descriptors for reuse while another connection of the process holds the file,
    as many as were ever open at once; overlapping cycles would vary that number."""
    server = lightbox_factory(dicom_workers=1)
    spool = Path(server.data) / "spool"
    (pid,) = workers_of(server.proc.pid)
    idle_threads = len(os.listdir(f"/proc/{pid}/task"))

    def cycle(number: int) -> None:
        abandon_c_store(server.dicom_port, number)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(os.listdir(f"/proc/{pid}/task")) > idle_threads:
            time.sleep(0.01)

    for number in range(3):
        cycle(number)
    baseline = fds(pid)
    for number in range(50):
        cycle(number)
    assert list(spool.glob("*")) == []
    assert fds(pid) <= baseline, "\n".join(os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    assert echo_ok(server)
