"""A bounded fuzzer of the DICOM door: seeded mutations of the A-ASSOCIATE-RQ, of P-DATA-TF
PDUs, of DIMSE command sets and of datasets, each case on a connection of its own.

Between cases the caller checks that the server keeps answering C-ECHO and stays within its
memory, and at the end that it stored nothing it refused (``Outcome.refused``).  tests/
test_fuzz.py runs a fixed count in CI; a longer run::

    python -m bench.fuzz [--cases 5000] [--seed 1]    # against a Lightbox it starts
"""

from __future__ import annotations

import argparse
import random
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from appliance.archive import IMPLEMENTATION_CLASS_UID
from appliance.dicom import dimse, pdu

VERIFICATION = "1.2.840.10008.1.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
IMPLICIT_LE, EXPLICIT_LE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
UID_ROOT = "1.2.826.0.1.3680043.10.1288"  # the cases' own instances
READ_LIMIT = 1 << 20  # bytes of answer read per case
CASE_TIMEOUT_S = 3.0
KINDS = ("associate", "command", "dataset", "stream")
BOUNDARY_LENGTHS = (0, 1, 2, 3, 0x7F, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF)


@dataclass
class Outcome:
    """What a case's answers said: statuses of C-STORE-RSPs by SOP Instance UID."""

    acknowledged: set[str] = field(default_factory=set)  # stored: status 0x0000 or a warning
    refused: set[str] = field(default_factory=set)  # a failure status


@dataclass(frozen=True)
class Case:
    number: int
    kind: str
    sop_uid: str  # the instance the case tries to store ("" when it stores none)
    pdus: tuple[bytes, ...]


def dataset_bytes(sop_uid: str, rng: random.Random) -> bytes:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{sop_uid}.1", f"{sop_uid}.2"
    ds.PatientID, ds.PatientName, ds.Modality = "FUZZ", "Fuzz^Case", "OT"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = rng.randbytes(64)
    out = DicomBytesIO()
    out.is_implicit_VR, out.is_little_endian = False, True
    write_dataset(out, ds)
    return out.getvalue()


def associate_rq(called_ae: str) -> bytes:
    contexts = [pdu.ProposedContext(1, VERIFICATION, [IMPLICIT_LE]),
                pdu.ProposedContext(3, SECONDARY_CAPTURE, [EXPLICIT_LE])]  # fmt: skip
    return pdu.associate_rq(called_ae, "FUZZER", contexts, 16384, IMPLEMENTATION_CLASS_UID, "FUZZ")


def _mutate(data: bytes, rng: random.Random, header: int = 0) -> bytes:
    """One of: flipped bits, a byte set to a boundary value, a length field (at ``header`` or
    anywhere) set to a boundary, a cut, a repeated slice, inserted noise."""
    b = bytearray(data)
    choice = rng.randrange(6)
    if choice == 0:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif choice == 1:
        b[rng.randrange(len(b))] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF))
    elif choice == 2 and len(b) >= header + 6:
        at = header + 2 if rng.random() < 0.5 else rng.randrange(len(b) - 4)
        struct.pack_into(">I", b, at, rng.choice(BOUNDARY_LENGTHS + (len(b) - 5, len(b) + 1)))
    elif choice == 3:
        del b[rng.randrange(1, len(b)) :]
    elif choice == 4:
        start = rng.randrange(len(b))
        b[start:start] = b[start : start + rng.randint(1, 64)] * rng.randint(1, 16)
    else:
        at = rng.randrange(len(b) + 1)
        b[at:at] = rng.randbytes(rng.randint(1, 256))
    return bytes(b)


def cases(seed: int, count: int, called_ae: str = "LIGHTBOX") -> Iterator[Case]:
    rng = random.Random(seed)
    associate = associate_rq(called_ae)
    for number in range(count):
        kind = KINDS[number % len(KINDS)]
        sop_uid = f"{UID_ROOT}.{seed}.{number}"
        command = pdu.p_data(3, 0x03, dimse.store_request(1, SECONDARY_CAPTURE, sop_uid))
        data = pdu.p_data(3, 0x02, dataset_bytes(sop_uid, rng))
        echo = pdu.p_data(1, 0x03, dimse.echo_request(2, VERIFICATION))
        release = pdu.release_rq()
        if kind == "associate":
            pdus: tuple[bytes, ...] = (_mutate(associate, rng),)
        elif kind == "command":
            pdus = (associate, _mutate(rng.choice((command, echo)), rng), data, release)
        elif kind == "dataset":
            pdus = (associate, command, _mutate(data, rng), release)
        else:
            stream = associate + command + data + echo + release
            pdus = (_mutate(stream, rng, header=len(associate)),)
        yield Case(number, kind, sop_uid if kind != "associate" else "", pdus)


def _responses(received: bytes) -> Iterator[dimse.Command]:
    """The DIMSE commands in the server's answer (P-DATA-TF command fragments, whole)."""
    at = 0
    while at + 6 <= len(received):
        pdu_type, length = pdu.HEADER.unpack_from(received, at)
        body = received[at + 6 : at + 6 + length]
        at += 6 + length
        if pdu_type != pdu.P_DATA_TF or len(body) < length:
            continue
        item = 0
        while item + 6 <= len(body):
            (item_length,) = struct.unpack_from(">I", body, item)
            control = body[item + 5]
            if control & 0x01:  # a command fragment (Lightbox sends each command whole)
                try:
                    yield dimse.decode(body[item + 6 : item + 4 + item_length])
                except Exception:
                    pass
            item += 4 + item_length


def run_case(host: str, port: int, case: Case) -> Outcome:
    """Send the case's bytes, read what comes back (bounded), and say what it acknowledged."""
    outcome = Outcome()
    received = bytearray()
    with socket.create_connection((host, port), timeout=CASE_TIMEOUT_S) as sock:
        try:
            for data in case.pdus:
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + CASE_TIMEOUT_S
            while len(received) < READ_LIMIT and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except OSError:
            pass  # reset or timed out: the server refused the case, as it may
    for command in _responses(bytes(received)):
        if command.field == dimse.C_STORE_RSP and case.sop_uid:
            status = command.us(dimse.STATUS)
            ok = status == 0 or 0xB000 <= status <= 0xBFFF
            (outcome.acknowledged if ok else outcome.refused).add(case.sop_uid)
    return outcome


def fuzz(host: str, port: int, seed: int, count: int, between: Callable[[int], None], every: int = 50) -> Outcome:
    """Run ``count`` cases; ``between(n)`` every ``every`` cases and after the last (the checks)."""
    total = Outcome()
    for case in cases(seed, count):
        outcome = run_case(host, port, case)
        total.acknowledged |= outcome.acknowledged
        total.refused |= outcome.refused
        if (case.number + 1) % every == 0:
            between(case.number + 1)
    between(count)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    from appliance.dicom.probe import ProbeFailed, echo
    from bench.procstat import descendants, pss_bytes
    from bench.servers import lightbox_server

    with tempfile.TemporaryDirectory() as run_dir, lightbox_server(Path(run_dir), "fuzz") as server:
        peak = 0

        def between(done: int) -> None:
            nonlocal peak
            try:
                echo("127.0.0.1", server.dicom_port, server.aet, "BENCH", timeout=10)
            except ProbeFailed as exc:
                raise SystemExit(f"C-ECHO failed after {done} cases: {exc}") from None
            pss = sum(pss_bytes(pid) for pid in descendants(server.proc.pid))
            peak = max(peak, pss)
            print(f"{done:6d} cases  PSS {pss / 2**20:6.1f} MB", flush=True)

        started = time.monotonic()
        outcome = fuzz("127.0.0.1", server.dicom_port, args.seed, args.cases, between, every=500)
        print(f"{args.cases} cases in {time.monotonic() - started:.0f} s; stored {len(outcome.acknowledged)}, "
              f"refused {len(outcome.refused)}; peak PSS {peak / 2**20:.1f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
