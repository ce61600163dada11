"""Query/retrieve against a running Lightbox with DCMTK's findscu and movescu, and the nodes
they need, added with `lightbox node add`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from support.lightbox import LightboxProcess
from support.peers import StoreSCP
from support.tools import dcmtk


def add_node(server: LightboxProcess, aet: str, port: int, allow: str = "find,move,get,store") -> None:
    result = server.cli("node", "add", "--aet", aet, "--host", "127.0.0.1", "--port", str(port), "--allow", allow)
    assert result.returncode == 0, result.stderr


def findscu(server: LightboxProcess, out: Path, model: str, *keys: str | bytes) -> list[Dataset]:
    """DCMTK findscu (-P patient root, -S study root); every pending identifier, read back."""
    out.mkdir(parents=True, exist_ok=True)
    cmd: list[str | bytes] = [dcmtk("findscu"), "-aet", "FINDSCU", "-aec", server.aet, model, "-X", "-od", str(out)]
    for key in keys:
        cmd += ["-k", key]
    env = {**os.environ, "TCP_NODELAY": "1"}
    result = subprocess.run(cmd + ["127.0.0.1", str(server.dicom_port)], capture_output=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def movescu_to_storescp(
    server: LightboxProcess, study_uid: str, received: Path
) -> tuple[subprocess.CompletedProcess, list[Path]]:
    """DCMTK movescu asks ``server`` to C-MOVE a study to a DCMTK storescp (uncompressed
    syntaxes only, its default); return movescu's run and the files storescp received."""
    scp = StoreSCP(received)
    try:
        add_node(server, "STORESCP", scp.port, "store")
        add_node(server, "MOVESCU", 1, "move")
        result = subprocess.run(
            [dcmtk("movescu"), "-v", "-S", "-aet", "MOVESCU", "-aec", server.aet, "-aem", "STORESCP",
             "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
             "127.0.0.1", str(server.dicom_port)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        return result, scp.files()
    finally:
        scp.stop()
