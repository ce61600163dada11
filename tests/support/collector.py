"""A real syslog collector for the audit export tests: rsyslogd on 127.0.0.1 (UDP, TCP, or TLS
with a CA and certificate made by openssl), writing what it receives to a file."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from support.ports import free_port
from support.tools import require

RSYSLOGD = Path("/usr/sbin/rsyslogd")


def make_certificates(folder: Path, host: str = "127.0.0.1") -> dict[str, Path]:
    """A CA, and a server certificate it signed for ``host`` (as an IP subjectAltName)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / f"{name}.pem" for name in ("ca", "ca-key", "cert", "key")}

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test audit CA",
            "-keyout", str(files["ca-key"]), "-out", str(files["ca"]))  # fmt: skip
    request = folder / "cert.csr"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", str(files["key"]),
            "-out", str(request))  # fmt: skip
    extensions = folder / "san.cnf"
    extensions.write_text(f"subjectAltName=IP:{host}\n")
    openssl("x509", "-req", "-in", str(request), "-CA", str(files["ca"]), "-CAkey", str(files["ca-key"]),
            "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(files["cert"]))  # fmt: skip
    return files


class Collector:
    """rsyslogd in the foreground; ``messages()`` are the raw RFC 5424 messages received."""

    def __init__(
        self, folder: Path, transport: str, certificates: dict[str, Path] | None = None, port: int = 0
    ) -> None:
        require(RSYSLOGD)  # Debian packages rsyslog and rsyslog-gnutls
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = port or free_port()
        self.out = folder / "received.log"
        self.transport = transport
        tls = ""
        if transport == "tls":
            assert certificates is not None
            tls = (
                f'global(DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{certificates["ca"]}"'
                f' DefaultNetstreamDriverCertFile="{certificates["cert"]}"'
                f' DefaultNetstreamDriverKeyFile="{certificates["key"]}")\n'
            )
        module = {"udp": 'module(load="imudp")', "tcp": 'module(load="imtcp")',
                  "tls": 'module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1"'
                         ' StreamDriver.AuthMode="anon")'}[transport]  # fmt: skip
        kind = "imudp" if transport == "udp" else "imtcp"
        (folder / "rsyslog.conf").write_text(
            f'global(workDirectory="{folder}" maxMessageSize="256k")\n{tls}{module}\n'
            f'input(type="{kind}" address="127.0.0.1" port="{self.port}")\n'
            'template(name="seen" type="string" string="%msgid% %pri% %rawmsg%\\n")\n'
            f'action(type="omfile" file="{self.out}" template="seen")\n'
        )
        self.proc = subprocess.Popen(
            [str(RSYSLOGD), "-n", "-f", str(folder / "rsyslog.conf"), "-i", str(folder / "rsyslogd.pid")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        time.sleep(0.5)  # rsyslogd opens its inputs at once; TCP connections would wait anyway
        if self.proc.poll() is not None:
            raise RuntimeError(f"rsyslogd exited: {self.proc.stdout.read().decode() if self.proc.stdout else ''}")

    @property
    def url(self) -> str:
        return f"{self.transport}://127.0.0.1:{self.port}"

    def messages(self) -> list[str]:
        return self.out.read_text(encoding="utf-8").splitlines() if self.out.exists() else []

    def wait_for(self, count: int, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(found := self.messages()) >= count:
                return found
            time.sleep(0.2)
        raise AssertionError(f"the collector received {len(self.messages())} messages, not {count}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
