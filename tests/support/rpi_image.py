"""The Raspberry Pi image from the outside: its partitions and files read with the host's tools
(sfdisk, mtools, debugfs; nothing is mounted), and the image booted in qemu-system-aarch64."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from support.ports import free_port

SECTOR = 512
T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
# What image-build/build and the checks of the image need on this machine (tests/prepare).
HOST_TOOLS = ("mmdebstrap", "arch-test", "mcopy", "mkfs.vfat", "mkfs.ext4", "sfdisk", "debugfs", "xz",
              "qemu-system-aarch64", "zstd", "systemd-analyze", "journalctl")  # fmt: skip


def cannot_build() -> str:
    """Why this machine cannot build the image ("" if it can)."""
    if os.geteuid() != 0:
        return "the image build needs root (mmdebstrap, chroot)"
    for tool in HOST_TOOLS:
        if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            return f"{tool} is not installed (tests/prepare installs it)"
    return ""


class BackgroundBuild:
    """`image-build/build --quick`, started when the session's tests are chosen (conftest.py) so
    that its ~10 minutes of emulated dpkg overlap the rest of the suite; niced, so that the
    other tests come first for the CPU.  The image's tests wait for it."""

    started: BackgroundBuild | None = None

    def __init__(self, log: Path) -> None:
        self.out = Path(tempfile.mkdtemp(prefix="lightbox-image-"))
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as sink:
            self.proc = subprocess.Popen(
                ["nice", "-n", "10", str(REPO / "image-build" / "build"), "--quick", "--out", str(self.out)],
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.began = time.monotonic()
        BackgroundBuild.started = self

    def wait(self, timeout: float) -> tuple[int, float]:
        """The build's exit status and how long it took."""
        status = self.proc.wait(timeout)
        return status, time.monotonic() - self.began

    def stop(self) -> None:
        """End the build if the session ends first (a failure, ^C), and remove its image."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(60)
        shutil.rmtree(self.out, ignore_errors=True)


@dataclass(frozen=True)
class Partition:
    number: int
    start: int  # bytes
    size: int  # bytes
    type: str  # MBR type, e.g. "c" (FAT32 LBA) or "83" (Linux)
    bootable: bool


def partitions(image: Path) -> tuple[str, list[Partition]]:
    """The partition table's label ("dos", "gpt") and its partitions, from the image file."""
    table = json.loads(run("sfdisk", "--json", str(image)))["partitiontable"]
    found = [
        Partition(n, p["start"] * SECTOR, p["size"] * SECTOR, p["type"], bool(p.get("bootable")))
        for n, p in enumerate(table["partitions"], start=1)
    ]
    return table["label"], found


def run(*cmd: str, timeout: float = 120) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_MTOOLS_ENV)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    return done.stdout


_MTOOLS_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C.UTF-8"}


class BootPartition:
    """The FAT partition, read with mtools at its offset in the image (``image@@offset``)."""

    def __init__(self, image: Path, partition: Partition) -> None:
        self.spec = f"{image}@@{partition.start}"

    def label(self) -> str:
        return run("mlabel", "-s", "-i", self.spec, "::").split(" is ", 1)[-1].strip()

    def names(self) -> set[str]:
        listing = run("mdir", "-b", "-i", self.spec, "::/")  # one "::/NAME" a line
        return {line.removeprefix("::/").rstrip("/") for line in listing.splitlines() if line.strip()}

    def read(self, name: str) -> bytes:
        done = subprocess.run(
            ["mtype", "-i", self.spec, "::/" + name], capture_output=True, timeout=60, env=_MTOOLS_ENV
        )
        if done.returncode != 0:
            raise FileNotFoundError(f"{name}: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout

    def copy_out(self, name: str, folder: Path) -> Path:
        run("mcopy", "-n", "-i", self.spec, "::/" + name, str(folder / name))
        return folder / name


class RootPartition:
    """The ext4 partition, read with debugfs at its offset in the image (``image?offset=N``)."""

    def __init__(self, image: Path, partition: Partition) -> None:
        self.spec = f"{image}?offset={partition.start}"

    def header(self) -> dict[str, str]:
        text = run("dumpe2fs", "-h", self.spec)
        return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}

    def read(self, path: str) -> bytes:
        done = subprocess.run(["debugfs", "-R", f"cat {path}", self.spec], capture_output=True, timeout=60)
        if done.returncode != 0 or b"File not found" in done.stderr:
            raise FileNotFoundError(f"{path}: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout

    def text(self, path: str) -> str:
        return self.read(path).decode()

    def exists(self, path: str) -> bool:
        done = subprocess.run(["debugfs", "-R", f"stat {path}", self.spec], capture_output=True, timeout=60)
        return done.returncode == 0 and b"File not found" not in done.stderr

    def listing(self, path: str) -> list[str]:
        """The names in a directory (``debugfs ls -p``: /inode/mode/uid/gid/name/size/)."""
        out = run("debugfs", "-R", f"ls -p {path}", self.spec)
        return [fields[5] for fields in (line.split("/") for line in out.splitlines()) if len(fields) > 6]

    def write(self, path: str, text: str, scratch: Path) -> None:
        """Add a file (its folder must exist or be one level down an existing one), root's, 0644."""
        scratch.write_text(text)
        scratch.chmod(0o644)
        folder = str(Path(path).parent)
        if not self.exists(folder):
            run("debugfs", "-w", "-R", f"mkdir {folder}", self.spec)
        run("debugfs", "-w", "-R", f"write {scratch} {path}", self.spec)
        assert self.read(path).decode() == text

    def extract(self, path: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        run("debugfs", "-R", f"rdump {path} {dest}", self.spec, timeout=600)
        return dest / Path(path).name


class QemuBox:
    """The image booted in qemu-system-aarch64 -M virt (TCG), as a Pi-like box on a LAN: 1 GB of
    memory, a Cortex-A53 (a Pi 3's CPU), no clock worth trusting, the image as its disk, DHCP from
    qemu's user-mode network, guest ports forwarded to 127.0.0.1 on the host."""

    def __init__(self, disk: Path, kernel: Path, initrd: Path, cmdline: str, guest_ports: list[int], log: Path) -> None:
        self.host_port = {port: free_port() for port in guest_ports}
        forwards = ",".join(f"hostfwd=tcp:127.0.0.1:{host}-:{guest}" for guest, host in self.host_port.items())
        self.serial_log = log
        self.monitor = disk.with_suffix(".monitor")  # qemu's monitor: the power button
        self.command = [
            shutil.which("qemu-system-aarch64") or "/usr/bin/qemu-system-aarch64",
            "-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "1024",
            "-display", "none", "-serial", f"file:{log}", "-no-reboot",
            "-monitor", f"unix:{self.monitor},server=on,wait=off",
            "-rtc", "base=2000-01-01T00:00:00",  # a Pi has no clock: the box must not care
            "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline,
            "-drive", f"file={disk},format=raw,if=none,id=card,cache=writeback",
            "-device", "virtio-blk-pci,drive=card",
            "-netdev", f"user,id=lan,{forwards}",
            "-device", "virtio-net-pci,netdev=lan,romfile=",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def __enter__(self) -> QemuBox:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def power_off(self, timeout: float) -> bool:
        """Press the power button (systemd-logind shuts the box down, the journal reaches the
        disk); True if the box was off within ``timeout`` (qemu exits: -no-reboot)."""
        assert self.proc is not None
        with socket.socket(socket.AF_UNIX) as monitor:
            monitor.connect(str(self.monitor))
            monitor.sendall(b"system_powerdown\n")
            time.sleep(1)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def console(self) -> str:
        return self.serial_log.read_text(errors="replace") if self.serial_log.exists() else ""

    def running(self) -> None:
        """Fail at once, with what the console said, if qemu has stopped (a panic, a crash)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            output = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
            raise AssertionError(
                f"qemu exited with {self.proc.returncode}: {output}\n--- console:\n{self.console()[-6000:]}"
            )

    def wait_for(self, check: Callable[[], T | None], what: str, timeout: float) -> T:
        """Poll ``check()`` until it returns something true (an OSError counts as not yet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.running()
            try:
                found = check()
            except (OSError, ValueError):  # not answering yet (requests' errors are OSErrors)
                found = None
            if found:
                return found
            time.sleep(2)
        raise AssertionError(f"{what} within {timeout:.0f} s\n--- console:\n{self.console()[-6000:]}")


def cpio_names(archive: bytes) -> list[str]:
    """The paths in a cpio archive of the "newc" format (an initramfs), read without cpio(1)."""
    names, at = [], 0
    while archive[at : at + 6] == b"070701":
        name_size, data_size = int(archive[at + 94 : at + 102], 16), int(archive[at + 54 : at + 62], 16)
        name = archive[at + 110 : at + 110 + name_size - 1].decode()
        if name == "TRAILER!!!":
            break
        names.append(name)
        at = (at + 110 + name_size + 3) & ~3  # header and name, padded to 4 bytes
        at = (at + data_size + 3) & ~3  # the file's data, padded too
    return names


def kernel_command_line(cmdline_txt: str, console: str) -> str:
    """The image's cmdline.txt with its consoles replaced by ``console`` (qemu's serial port)."""
    words = [w for w in cmdline_txt.split() if not w.startswith("console=")]
    return " ".join([f"console={console}", *words])


def listen_ports(unit_text: str) -> list[int]:
    """The TCP ports a .socket unit listens on (ListenStream=PORT or ADDRESS:PORT)."""
    return [int(m) for m in re.findall(r"^ListenStream=(?:.*:)?(\d+)\s*$", unit_text, re.M)]


class NtpServer:
    """A time server for the box on 127.0.0.1:123 (the box reaches it at 10.0.2.2, qemu's host
    address), answering SNTP with this host's clock plus ``offset`` seconds: a clock the box can
    only have from it, and a jump that Lightbox must live through."""

    NTP_EPOCH = 2208988800  # 1900 to 1970, in seconds

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self.answered = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 123))
        threading.Thread(target=self._serve, daemon=True).start()

    def _stamp(self) -> bytes:
        now = time.time() + self.offset + self.NTP_EPOCH
        return struct.pack("!II", int(now), int((now % 1) * 2**32))

    def _serve(self) -> None:
        while True:
            try:
                request, client = self.sock.recvfrom(512)
            except OSError:
                return  # closed
            if len(request) < 48:
                continue
            received = self._stamp()
            # LI 0, version 4, mode 4 (server); stratum 1; poll 4; precision 2^-20; no delay or
            # dispersion; reference "LOCL"; origin = the client's transmit time, as it checks.
            header = struct.pack("!BBbbII4s", 0x24, 1, 4, -20, 0, 0, b"LOCL")
            self.sock.sendto(header + received + request[40:48] + received + self._stamp(), client)
            self.answered += 1

    def close(self) -> None:
        self.sock.close()


def journal(root: RootPartition, folder: Path, *args: str) -> str:
    """The box's persistent journal (/var/log/journal on its card), read by this host's journalctl."""
    copied = root.extract("/var/log/journal", folder)
    return run("journalctl", "--directory", str(next(p for p in copied.iterdir() if p.is_dir())), "--no-pager",
               "--output", "short-monotonic", *args)  # fmt: skip
