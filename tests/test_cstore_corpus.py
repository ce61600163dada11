"""pydicom's bundled test corpus through C-STORE: the valid instances go in byte-identical,
the invalid ones are refused with a reason, and the server keeps serving."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import UID
from pynetdicom import AE, _config

from support.corpus import DEFLATED, corpus, is_valid_instance, sendable
from support.dicomgen import dataset_bytes, make_study
from support.tools import dcmtk

pytestmark = pytest.mark.slow  # the whole pydicom corpus, twice


def send_raw(port: int, path: Path, sop_class: UID, syntax: UID) -> int | None:
    """C-STORE the file's dataset bytes exactly as they are on disk (pynetdicom reads the file
    in chunks without decoding it); returns the status, or None if not sent."""
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the file's bytes, do not re-encode
    ae = AE(ae_title="RAWSCU")
    ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate("127.0.0.1", port, ae_title="LIGHTBOX")
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_store(path)
        return int(status.Status) if "Status" in status else None
    finally:
        assoc.release()


def stored_files(data: Path) -> dict[str, Path]:
    with sqlite3.connect(data / "index.sqlite") as db:
        return {uid: data / "storage" / key for uid, key in db.execute("select sop_uid, file_key from instance")}


def test_corpus_valid_instances_stored_byte_identical_invalid_refused(lightbox):
    first_sent: dict[str, Path] = {}
    refused: list[str] = []
    checked = 0
    for path in corpus():
        info = sendable(path)
        if info is None or str(info[2]) in DEFLATED:
            continue  # no meta header to send from, or a syntax the association refuses
        sop_class, sop_uid, syntax = info
        status = send_raw(lightbox.dicom_port, path, sop_class, syntax)
        if status is None:
            continue
        checked += 1
        if is_valid_instance(path):
            assert status == 0x0000, f"{path.name}: valid instance refused with 0x{status:04X}"
            first_sent.setdefault(sop_uid, path)
        else:
            assert status in (0xA900, 0xC000), f"{path.name}: invalid instance answered 0x{status:04X}"
            refused.append(path.name)
    assert checked > 100 and len(first_sent) > 80, (checked, len(first_sent))
    assert refused, "the corpus holds invalid instances; none was refused"

    stored = stored_files(lightbox.data)
    for uid, path in first_sent.items():
        assert uid in stored, f"{path.name} acknowledged but not indexed"
        assert dataset_bytes(stored[uid]) == dataset_bytes(path), f"{path.name}: stored dataset differs"
        meta = dcmread(stored[uid], stop_before_pixels=True).file_meta
        assert meta.MediaStorageSOPInstanceUID == uid
        assert meta.SendingApplicationEntityTitle == "RAWSCU"
    log = lightbox.log()
    assert log.count("outcome=refused_") >= len(refused)
    assert "reason=" in log
    assert lightbox.echoscu().returncode == 0
    verify = lightbox.cli("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_corpus_through_dcmtk_dcmsend(lightbox):
    """DCMTK as the real peer: what dcmsend transmits (it re-encodes, and refuses files it
    cannot read itself) is answered Success when valid and with a failure status otherwise."""
    tool = dcmtk("dcmsend")
    answered = 0
    for path in corpus():
        result = subprocess.run(
            [
                tool,
                "-v",
                "-dn",
                "-aet",
                "DCMSEND",
                "-aec",
                "LIGHTBOX",
                "127.0.0.1",
                str(lightbox.dicom_port),
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TCP_NODELAY": "1"},
        )
        output = result.stdout + result.stderr
        if "Received C-STORE Response" not in output:
            continue
        answered += 1
        # dcmsend warns when the identity it puts in the command (from the meta header) is not
        # the one it reads in the dataset (e.g. UIDs stored with VR UN): that must be refused.
        identity_differs = "differs from the one in the transfer list" in output
        if is_valid_instance(path) and not identity_differs:
            assert "C-STORE Response (Success)" in output, f"{path.name}:\n{output}"
        elif not is_valid_instance(path, meta_must_agree=False):
            assert "C-STORE Response (Error" in output, f"{path.name}:\n{output}"
        # Otherwise the answer depends on which identity dcmsend chose; the server must simply
        # go on serving, which the next file and the final C-ECHO show.
    assert answered > 100
    assert lightbox.echoscu().returncode == 0
    assert lightbox.count() > 80


@pytest.mark.parametrize("aet", ["lowercase", "TRAILING   ", "A B"])
def test_lenient_calling_ae_titles_are_accepted_and_recorded(lightbox, tmp_path, aet):
    files = make_study(tmp_path / "study", 1)
    result = lightbox.storescu(*files, aet=aet)
    assert "Store Response (Success)" in result.stdout + result.stderr, result.stdout + result.stderr
    with sqlite3.connect(lightbox.data / "index.sqlite") as db:
        (calling,) = db.execute("select calling_ae from instance").fetchone()
    assert calling == aet.strip()
