"""The Raspberry Pi image (image-build/): made by its own command, checked from the outside, and
booted in qemu-system-aarch64 as a box on a LAN with no keyboard or screen.

The build (`--quick`) starts in the background when the session begins (conftest.py) and these
tests run last, so that its ~10-15 minutes of emulated dpkg overlap the rest of the suite; with
its cache (image-build/.cache) it takes ~2 minutes.  The boot to a serving Lightbox takes ~1.5
minutes under TCG.  The figures go to tests/artifacts/image-times.txt, the box's serial console
and journal to tests/artifacts/.
"""

from __future__ import annotations

import contextlib
import email.utils
import lzma
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from appliance import __version__
from support.dicomgen import make_study
from support.rpi_image import (
    BackgroundBuild,
    BootPartition,
    NtpServer,
    QemuBox,
    RootPartition,
    cannot_build,
    cpio_names,
    journal,
    kernel_command_line,
    listen_ports,
    partitions,
)
from support.tlsfiles import served_fingerprint
from support.tools import dcmtk, missing
from support.web import ADMIN, ADMIN_PASSWORD, Client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000 + 900 + 900)]  # build, boot, the rest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
BUILD_TIMEOUT = 3000  # seconds the test waits for it; 15-17 minutes from scratch on two busy cores
BOOT_TIMEOUT = 900  # seconds from power-on to /healthz; ~80 s under TCG
CODE = re.compile(r"[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}")
# The boards the image is for, by the device tree the firmware loads for each (upstream_kernel=1).
BOARD_DTBS = (
    "bcm2837-rpi-3-b.dtb",  # Pi 3 B
    "bcm2837-rpi-3-b-plus.dtb",  # Pi 3 B+
    "bcm2837-rpi-3-a-plus.dtb",  # Pi 3 A+
    "bcm2837-rpi-zero-2-w.dtb",  # Zero 2 W
    "bcm2711-rpi-4-b.dtb",  # Pi 4 B
    "bcm2711-rpi-400.dtb",  # Pi 400
    "bcm2711-rpi-cm4-io.dtb",  # CM4
)


def note(line: str) -> None:
    """A figure for the notes (tests/artifacts/image-times.txt); never asserted."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "image-times.txt", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def note_time(what: str, seconds: float) -> None:
    note(f"{what}: {seconds:.0f} s")


def served_time(web: Client) -> float:
    """The box's clock, as its web server's Date header says."""
    return email.utils.parsedate_to_datetime(web.get("/healthz", timeout=10).headers["Date"]).timestamp()


@contextlib.contextmanager
def ntp_closing(ntp: NtpServer) -> Iterator[NtpServer]:
    try:
        yield ntp
    finally:
        ntp.close()


@pytest.fixture(scope="module")
def image_xz() -> Path:
    """`image-build/build --quick` (README's command, xz -1), started in the background when the
    session began (conftest.py), into a folder of this test run."""
    if why := cannot_build():
        missing(why)
    build = BackgroundBuild.started or BackgroundBuild(ARTIFACTS / "image-build.log")
    status, seconds = build.wait(BUILD_TIMEOUT)
    assert status == 0, build.log.read_text()[-8000:]
    note_time("image build (image-build/build --quick, niced, alongside the tests before this one)", seconds)
    return build.out / f"lightbox-{__version__}-rpi-arm64.img.xz"


@pytest.fixture(scope="module")
def image(image_xz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image as a user flashes it: the .img.xz decompressed (holes kept for the zeros)."""
    raw = tmp_path_factory.mktemp("image") / image_xz.name.removesuffix(".xz")
    with lzma.open(image_xz) as src, open(raw, "wb") as dst:
        while block := src.read(1 << 20):
            if block.count(0) == len(block):
                dst.seek(len(block), os.SEEK_CUR)
            else:
                dst.write(block)
        dst.truncate()
    return raw


@pytest.fixture(scope="module")
def boot(image: Path) -> BootPartition:
    return BootPartition(image, partitions(image)[1][0])


@pytest.fixture(scope="module")
def root(image: Path) -> RootPartition:
    return RootPartition(image, partitions(image)[1][1])


def test_image_is_named_for_its_version_and_checksummed(image_xz: Path) -> None:
    listed = (image_xz.parent / (image_xz.name + ".sha256")).read_text().split()
    assert listed[1] == image_xz.name
    done = subprocess.run(["sha256sum", "--check", "--status", image_xz.name + ".sha256"], cwd=image_xz.parent,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0


def test_partitions_are_an_mbr_with_a_fat32_boot_and_an_ext4_root_found_by_labels(image, boot, root) -> None:
    label, (first, second, *more) = partitions(image)
    assert label == "dos" and not more  # the Pi 3's boot ROM reads an MBR only
    assert first.type == "c" and first.start % (4 << 20) == 0 and first.size >= 200 << 20
    assert second.type == "83" and second.start == first.start + first.size
    assert second.start + second.size == image.stat().st_size  # grown on the box, not here
    assert boot.label() == "LIGHTBOX"
    header = root.header()
    assert header["Filesystem volume name"] == "lightbox-root"
    assert header["Filesystem state"] == "clean"
    fstab = [line.split() for line in root.text("/etc/fstab").splitlines() if line.strip() and line[0] != "#"]
    mounts = {fields[1]: fields for fields in fstab}
    assert mounts["/"][:3] == ["LABEL=lightbox-root", "/", "ext4"]
    assert mounts["/boot/firmware"][:3] == ["LABEL=LIGHTBOX", "/boot/firmware", "vfat"]
    assert "x-systemd.automount" in mounts["/boot/firmware"][3]  # mounted only while in use


def test_boot_partition_boots_every_supported_pi_into_this_kernel(boot, root) -> None:
    names = boot.names()
    # Pi 3 and Zero 2 W boot ROM: bootcode.bin, then start.elf; Pi 4/400/CM4: start4.elf.
    assert {"bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat"} <= names
    assert set(BOARD_DTBS) <= names
    config = {}
    for line in boot.read("config.txt").decode().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=") if "=" in line else line.partition(" ")
            config[key.strip()] = value.strip()
    assert config["arm_64bit"] == "1" and config["upstream_kernel"] == "1"
    kernel, initrd = config["kernel"], config["initramfs"].split()[0]
    assert kernel in names and initrd in names
    version = kernel.removeprefix("vmlinuz-")
    assert initrd == f"initrd.img-{version}" and root.exists(f"/usr/lib/modules/{version}/modules.dep")
    cmdline = boot.read("cmdline.txt").decode()
    assert cmdline.count("\n") == 1 and cmdline.endswith("\n")  # one line, as the firmware wants
    words = cmdline.split()
    assert "root=LABEL=lightbox-root" in words and "rootwait" in words
    assert [w for w in words if w.startswith("console=")][-1] == "console=tty0"  # the HDMI screen
    assert not [w for w in words if w.startswith("cma=")]  # a build-time guess that can stop a Pi 4


def test_initramfs_holds_the_disk_drivers_of_a_pi_and_of_qemu_and_little_else(boot, tmp_path) -> None:
    initrd_name = next(n for n in boot.names() if n.startswith("initrd.img-"))
    initrd = boot.copy_out(initrd_name, tmp_path)
    unpacked = subprocess.run(["zstd", "-dc", str(initrd)], capture_output=True, timeout=120)
    assert unpacked.returncode == 0, unpacked.stderr
    paths = cpio_names(unpacked.stdout)
    assert "init" in paths and "conf/initramfs.conf" in paths
    # fsck and fsck.ext4: the root file system is checked (and repaired) before it is mounted,
    # which after a power cut is what keeps a box booting (the hook finds them via the fstab).
    assert {"fsck", "fsck.ext4"} <= {Path(p).name for p in paths if "sbin/" in p}
    modules = {Path(p).name.split(".ko")[0].replace("-", "_") for p in paths if ".ko" in p}
    needed = {
        "ext4", "sdhci_iproc", "bcm2835", "gpio_regulator", "fixed",  # SD cards (Pi 3, 4)
        "xhci_pci", "reset_raspberrypi", "dwc2", "usb_storage", "uas",  # USB disks
        "virtio_blk", "virtio_pci",  # qemu -M virt
    }  # fmt: skip
    assert needed <= modules, needed - modules
    assert len(modules) < 80, sorted(modules)  # MODULES=list, not "most" (thousands)


def test_root_has_no_way_in_but_the_browser(root) -> None:
    for line in root.text("/etc/shadow").splitlines():
        name, password = line.split(":")[:2]
        assert password.startswith(("*", "!")), f"{name} has a password"
    assert not root.exists("/usr/sbin/sshd") and not root.exists("/usr/sbin/dropbear")
    assert root.text("/etc/hostname").strip() == "lightbox"
    assert root.read("/etc/machine-id") == b""  # each box makes its own at its first boot
    journald = root.text("/etc/systemd/journald.conf.d/50-lightbox.conf")
    assert "SystemMaxUse=" in journald and "Storage=persistent" in journald


def test_the_image_runs_the_units_of_systemd_folder_with_their_sandbox_whole(root, tmp_path) -> None:
    units = "/usr/lib/systemd/system"
    for name in ("lightbox.service", "lightbox-http.socket", "lightbox-https.socket", "lightbox-dicom.socket"):
        assert root.read(f"{units}/{name}") == (REPO / "systemd" / name).read_bytes(), name
    assert root.read("/usr/lib/sysusers.d/lightbox.conf") == (REPO / "systemd/sysusers.d/lightbox.conf").read_bytes()
    assert root.read("/etc/lightbox/lightbox.toml") == (REPO / "systemd/lightbox.toml").read_bytes()
    wants = root.listing("/etc/systemd/system/sockets.target.wants")
    assert {"lightbox-http.socket", "lightbox-https.socket", "lightbox-dicom.socket"} <= set(wants)
    assert "lightbox.service" in root.listing("/etc/systemd/system/multi-user.target.wants")
    # The unit as the box runs it, with the image's drop-in: as exposed as systemd/'s, at most 1.5.
    copy = tmp_path / "root"
    root.extract(units, copy / "usr/lib/systemd")
    done = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={copy}", "--threshold=15",
                           "lightbox.service"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    score = float(re.findall(r"Overall exposure level for lightbox.service: ([0-9.]+)", done.stdout)[0])
    note(f"systemd-analyze security of the image's lightbox.service: {score}")
    assert score <= 1.5
    # The image's one addition: where the setup code is kept; nothing that loosens the sandbox.
    drop_in = root.text(f"{units}/lightbox.service.d/50-image.conf").splitlines()
    settings = [line for line in drop_in if line.strip() and not line.startswith("#")]
    assert settings == ["[Service]", "Environment=LIGHTBOX_SETUP_CODE_FILE=/var/lib/lightbox/setup-code"]


def test_dpkg_on_the_box_keeps_the_image_settings_and_syncs_what_it_writes(root) -> None:
    settings = [name for name in root.listing("/etc/dpkg/dpkg.cfg.d") if name not in (".", "..")]
    assert settings == ["lightbox-image"]  # not the build's force-unsafe-io (mmdebstrap's 99mmdebstrap)
    assert "unsafe-io" not in root.text("/etc/dpkg/dpkg.cfg.d/lightbox-image")


def test_lightbox_is_installed_from_aarch64_wheels_in_a_venv(root, tmp_path) -> None:
    site = "/opt/lightbox/venv/lib/python3.11/site-packages"
    names = root.listing(site)
    assert f"lightbox_pacs-{__version__}.dist-info" in names
    assert root.text("/opt/lightbox/venv/pyvenv.cfg").count("home = /usr/bin") == 1
    assert root.text("/opt/lightbox/venv/bin/lightbox").startswith("#!/opt/lightbox/venv/bin/python3\n")
    assert "__init__.cpython-311.pyc" in root.listing(f"{site}/appliance/__pycache__")  # compiled at build
    # Every compiled extension is for the Pi's CPU (ELF machine 183, AArch64), none for this host.
    compiled = root.extract(f"{site}/numpy", tmp_path), root.extract(f"{site}/PIL", tmp_path)
    shared = [p for folder in compiled for p in folder.rglob("*.so*") if p.is_file()]
    assert shared
    for library in shared:
        head = library.read_bytes()[:20]
        assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183, library


def test_first_boot_serves_and_shows_the_setup_code_only_on_the_card_and_the_console(image, boot, root, tmp_path):
    # A bigger card than the image, as in life: the root file system must grow to fill it.
    card = tmp_path / "card.img"
    subprocess.run(["cp", "--sparse=always", str(image), str(card)], check=True, timeout=300)
    root_part = partitions(image)[1][1]
    os.truncate(card, image.stat().st_size + (2 << 30))
    names = boot.names()
    kernel = boot.copy_out(next(n for n in names if n.startswith("vmlinuz-")), tmp_path)
    initrd = boot.copy_out(next(n for n in names if n.startswith("initrd.img-")), tmp_path)
    cmdline = kernel_command_line(boot.read("cmdline.txt").decode(), "ttyAMA0")
    # DICOM: the ports of Lightbox's socket unit (104 and 11112).
    dicom_ports = listen_ports(root.text("/usr/lib/systemd/system/lightbox-dicom.socket"))
    assert sorted(dicom_ports) == [104, 11112]
    card_boot = BootPartition(card, partitions(card)[1][0])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The clinic's network has a time server, here on this host (qemu's 10.0.2.2; qemu's DHCP
    # cannot announce one, so the card is told, as a router's DHCP would), three days ahead of
    # this host's clock: a time the box can only get by NTP, and a jump Lightbox must live through.
    card_root = RootPartition(card, root_part)
    card_root.write("/etc/systemd/timesyncd.conf.d/50-test.conf", "[Time]\nNTP=10.0.2.2\n", tmp_path / "ntp.conf")
    ntp = NtpServer(offset=3 * 86400)

    with (
        ntp_closing(ntp),
        QemuBox(card, kernel, initrd, cmdline, [80, 443, *dicom_ports], ARTIFACTS / "image-console.log") as box,
    ):
        web = Client(f"http://127.0.0.1:{box.host_port[80]}")
        health = box.wait_for(lambda: web.get("/healthz", timeout=10).json(), "/healthz answers", BOOT_TIMEOUT)
        note_time("qemu boot to /healthz", time.monotonic() - box.started)
        assert health["status"] == "ok" and health["version"] == __version__
        # The clock: set by NTP (three days ahead), and Lightbox serving across the jump.
        box.wait_for(lambda: abs(served_time(web) - (time.time() + 3 * 86400)) < 600, "the clock set by NTP", 300)
        assert ntp.answered
        assert "fsck not present" not in box.console()  # the initramfs checked the root file system
        # The root file system grew to the end of the bigger card (free space > the whole old partition).
        assert health["free_disk_bytes"] > root_part.size
        _, (_, grown) = partitions(card)
        assert card.stat().st_size - (grown.start + grown.size) < 1 << 20  # to the end (growpart keeps 33 sectors)

        # Unconfigured: every page leads to setup, the API wants a login.
        assert web.get("/").headers["Location"] == "/setup"
        setup_page = web.get("/setup")
        assert setup_page.status_code == 200 and "lightbox-setup-code.txt" in setup_page.text
        assert web.get("/api/studies").status_code == 401

        # The code: on the card's boot partition (what a PC shows) and on the console (an HDMI
        # screen or the serial pins), the same in both.
        card_text = box.wait_for(lambda: card_boot.read("lightbox-setup-code.txt").decode(),
                                 "the setup code on the boot partition", 300)  # fmt: skip
        code = CODE.findall(card_text)[0]
        console_code = box.wait_for(lambda: re.findall(r"First-run setup code: (\S+)", box.console()),
                                    "the setup code on the console", 300)[-1]  # fmt: skip
        assert console_code == code
        # ... and nowhere on the network.
        for path in ("/setup", "/login", "/healthz", "/api/studies", "/api/me", "/lightbox-setup-code.txt"):
            assert code not in web.get(path).text, path

        # HTTPS on 443 (lightbox-https.socket), with the certificate the box made: its fingerprint
        # on the console and on the card, where the first visitor compares it with the browser's.
        served = served_fingerprint(box.host_port[443])
        halves = box.wait_for(lambda: re.findall(r"HTTPS certificate \(SHA-256\), to check in the browser:\s+(\S+)\s+(\S+)",
                                                 box.console()), "the fingerprint on the console", 300)[-1]  # fmt: skip
        assert ":".join(halves) == served
        card_certificate = box.wait_for(lambda: card_boot.read("lightbox-certificate.txt").decode(),
                                        "the fingerprint on the boot partition", 300)  # fmt: skip
        assert halves[0] in card_certificate and halves[1] in card_certificate
        assert "lightbox-certificate.txt" in card_text  # the setup code's file says where to look

        # A modality stores a study before anyone has set the box up.
        study = make_study(tmp_path / "study", 3, patient_id="PI-IMAGE-1")
        for port in dicom_ports:
            echo = subprocess.run([dcmtk("echoscu"), "-aec", "LIGHTBOX", "127.0.0.1", str(box.host_port[port])],
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
            assert echo.returncode == 0, (port, echo.stdout + echo.stderr)
        store = subprocess.run([dcmtk("storescu"), "-aec", "LIGHTBOX", "127.0.0.1", str(box.host_port[dicom_ports[0]]),
                                *map(str, study)], capture_output=True, text=True, timeout=300)  # fmt: skip
        assert store.returncode == 0, store.stdout + store.stderr

        # Setup with the code from the card; then the study is there, and the code is gone.
        form = {"code": "000000-000000-000000", "name": ADMIN, "password": ADMIN_PASSWORD, "password2": ADMIN_PASSWORD}
        assert web.post("/setup", data=form, timeout=120).status_code == 403
        answer = web.post("/setup", data={**form, "code": code}, timeout=120)
        assert (answer.status_code, answer.headers.get("Location")) == (303, "/wizard"), (
            answer.text
        )  # then the set-up wizard

        study_uid = str(dcmread(study[0], stop_before_pixels=True).StudyInstanceUID)
        studies = web.get("/api/studies").json()["studies"]
        assert [(s["study_uid"], s["patient_id"]) for s in studies] == [(study_uid, "PI-IMAGE-1")]
        box.wait_for(lambda: "lightbox-setup-code.txt" not in card_boot.names(),
                     "the setup code removed from the boot partition", 120)  # fmt: skip
        assert Client(web.base).login(ADMIN, ADMIN_PASSWORD).status_code == 303

        # The console (an HDMI screen, here the serial port): the login prompt of a box named
        # lightbox, and the address it took by DHCP (qemu's network gives 10.0.2.15).
        console = box.console()
        assert "lightbox login:" in console
        assert "https://10.0.2.15/" in console
        # The power button: a clean shutdown, so that the journal is on the card to read.
        assert box.power_off(300), "the box did not power off within 300 s"

    log = journal(RootPartition(card, root_part), tmp_path / "journal")
    (ARTIFACTS / "image-journal.txt").write_text(log)
    assert f"setup_code={code}" in log  # journalctl -u lightbox shows it too
    assert "grow-root:" in log or "CHANGED: partition=2" in log  # the root grew at the first boot
    assert re.search(r"systemd-networkd.*: (eth0|enp0s\w+): DHCPv4 address 10\.0\.2\.15", log), "no DHCP lease"
    assert re.search(r"systemd-timesyncd.*(Initial clock synchronization|Contacted time server) .*10\.0\.2\.2", log)
