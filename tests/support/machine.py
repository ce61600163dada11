"""A Debian 12 machine with systemd as PID 1 (systemd-nspawn), for the service's tests.

Its root file system is made by mmdebstrap once and kept in tests/.rootfs/ (git-ignored; delete
it to make it again); each boot writes to an overlay of its own, so the cache stays as built.
The machine has a network namespace of its own, joined by a veth pair to the test's (the test
process is in a private network namespace itself: see ``netns.private_network``).  Commands run
inside it through ``nsenter`` into its init's namespaces: no D-Bus, no machined needed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.tools import missing, require

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "tests" / ".rootfs"
SUITE = "bookworm"
PACKAGES = ("systemd", "libnss-systemd", "python3", "python3-venv", "ca-certificates")
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_ADDRESS, ADDRESS = "192.0.2.1", "192.0.2.2"  # the test's end of the veth, the machine's (TEST-NET-1)
BOOT_WITHIN = 120.0  # seconds
BUILD_WITHIN = 900.0


def rootfs() -> Path:
    """The cached root file system (systemd, python3, nothing of Lightbox's), made if missing."""
    for tool in ("/usr/bin/mmdebstrap", "/usr/bin/systemd-nspawn", "/usr/bin/nsenter", "/usr/sbin/ip"):
        require(tool)
    key = hashlib.sha256(f"{SUITE} minbase {' '.join(PACKAGES)}".encode()).hexdigest()[:12]
    root = CACHE / f"{SUITE}-{key}"
    if not root.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        building = CACHE / f"{root.name}.building"
        shutil.rmtree(building, ignore_errors=True)
        started = time.monotonic()
        result = subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, str(building)],
            capture_output=True,
            text=True,
            timeout=BUILD_WITHIN,
        )
        if result.returncode != 0:
            missing(f"mmdebstrap could not make the root file system:\n{result.stderr[-3000:]}")
        building.rename(root)
        print(f"rootfs built in {time.monotonic() - started:.0f} s: {root}")
    return root


def wheels(into: Path) -> Path:
    """Lightbox's wheel from this checkout and a wheel of every dependency, made on this machine
    (the same Python 3.11 and architecture as the machine's), so nothing compiles inside."""
    into.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(into)]
    for args in (["--no-deps", str(ROOT)], ["--find-links", str(into), "lightbox-pacs"]):
        made = subprocess.run([*pip, *args], capture_output=True, text=True, timeout=600)
        if made.returncode != 0:
            raise RuntimeError(f"pip wheel {' '.join(args)} failed:\n{made.stderr[-3000:]}")
    [own] = into.glob("lightbox_pacs-*.whl")
    return own


class Machine:
    """One boot of the cached root file system, with ``work`` holding its overlay and logs."""

    def __init__(self, lower: Path, work: Path) -> None:
        self.work = work
        self.root = work / "merged"
        self.netns = f"lbt-{os.getpid()}"
        self.log_path = work / "console.log"
        self.nspawn: subprocess.Popen | None = None
        self.leader = 0
        for name in ("upper", "overlay-work", "merged"):
            (work / name).mkdir(parents=True)
        layers = f"lowerdir={lower},upperdir={work / 'upper'},workdir={work / 'overlay-work'}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", layers, str(self.root)], check=True)

    def link(self) -> None:
        """The machine's network namespace, and a veth from this one into it."""
        ip = ["ip"]
        subprocess.run([*ip, "netns", "add", self.netns], check=True)
        subprocess.run([*ip, "link", "add", "lbt0", "type", "veth", "peer", "name", "eth0", "netns", self.netns],
                       check=True)  # fmt: skip
        subprocess.run([*ip, "addr", "add", f"{HOST_ADDRESS}/24", "dev", "lbt0"], check=True)
        subprocess.run([*ip, "link", "set", "lbt0", "up"], check=True)
        inside = [*ip, "-n", self.netns]
        subprocess.run([*inside, "addr", "add", f"{ADDRESS}/24", "dev", "eth0"], check=True)
        subprocess.run([*inside, "link", "set", "eth0", "up"], check=True)
        subprocess.run([*inside, "link", "set", "lo", "up"], check=True)

    def boot(self) -> None:
        self.link()
        with open(self.log_path, "ab") as log:
            self.nspawn = subprocess.Popen(
                ["systemd-nspawn", "-D", str(self.root), "-b", "--register=no", "--keep-unit",
                 f"--network-namespace-path=/run/netns/{self.netns}", "--hostname=lightbox"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + BOOT_WITHIN
        state = ""
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with {self.nspawn.returncode}:\n{self.console()}")
            self.leader = self.leader or _child_of(self.nspawn.pid)
            if self.leader:
                state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.5)
        raise RuntimeError(f"the machine did not boot within {BOOT_WITHIN:.0f} s (state {state!r}):\n{self.console()}")

    def run(
        self, *command: str, check: bool = True, timeout: float = 120, target: int = 0, user: str = "",
        env: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess:  # fmt: skip
        """``command`` inside the machine (as root, or ``user``), in the namespaces of its init,
        or in those of ``target`` (a process of the machine, by its PID as the machine sees it)."""
        enter = ["nsenter", "-t", str(self.host_pid(target) if target else self.leader), "-a"]
        if user:  # nsenter's own switch: a service's user namespace does not allow runuser's setgroups
            uid, gid = (self.run("id", flag, user).stdout.strip() for flag in ("-u", "-g"))
            enter += ["-S", uid, "-G", gid]
        result = subprocess.run(
            [*enter, "env", "-i", PATH, *env, *command], capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result

    def host_pid(self, pid: int) -> int:
        """This machine's process ``pid`` as the host numbers it."""
        own = os.readlink(f"/proc/{self.leader}/ns/pid")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "ns" / "pid") != own:
                    continue
                spaced = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("NSpid"))
            except (OSError, StopIteration):
                continue
            if spaced.split()[-1] == str(pid):
                return int(entry.name)
        raise LookupError(f"no process {pid} in the machine")

    def console(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def shutdown(self) -> None:
        """Power off (SIGTERM to nspawn asks init to), then remove the overlay and the namespace."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(60)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait(30)
        subprocess.run(["umount", str(self.root)], check=False)
        subprocess.run(["ip", "netns", "delete", self.netns], check=False)


def _child_of(pid: int) -> int:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    return int(children[0]) if children else 0
