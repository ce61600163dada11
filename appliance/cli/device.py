"""`lightbox device ...`: learned devices, thin calls into ``archive.devices``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.archive import POLICIES, DeviceError, FoundService, LearnedDevice, NodeError, NoPort, parse_operations
from appliance.cli.common import (
    DATA_ONLY,
    Command,
    add_command,
    fail,
    list_rows,
    local_time,
    open_archive,
    settings_of,
    with_archive,
)

if TYPE_CHECKING:
    from appliance.archive import Archive


def add_commands(sub: argparse._SubParsersAction) -> None:
    device = sub.add_parser(
        "device", help="Learned devices: every peer that associated; approve, rename, ignore, edit, C-ECHO."
    )
    actions = device.add_subparsers(dest="device_command", required=True, metavar="ACTION")

    def action(name: str, func: Command, help_text: str, names: tuple[str, ...] = DATA_ONLY) -> argparse.ArgumentParser:
        p = add_command(actions, name, func, help_text, names)
        if name not in ("list", "discovered", "policy"):
            p.add_argument("device", metavar="AET", help="the device's AE title")
        return p

    p = action("list", cmd_list, "List the learned devices, most recently seen first.")
    p.add_argument("--all", action="store_true", help="include ignored devices")
    p = action(
        "approve", cmd_approve, "Approve a device (locked mode admits it); with a host and port it becomes a node."
    )
    _host_port(p)
    p = action("rename", cmd_rename, "Give a device a name for people.")
    p.add_argument("name")
    action("ignore", cmd_ignore, "Dismiss a device: refused while locked, without asking again.")
    p = action("edit", cmd_edit, "Change a device's AE title, host, port, allowed operations or quirks.")
    p.add_argument("--aet", dest="new_aet", help="its AE title")
    _host_port(p)
    p.add_argument(
        "--allow", help="comma-separated operations: find, move, get, store, commit (as for `lightbox node add`)"
    )
    p.add_argument("--charset", help="character set its files really use (e.g. ISO_IR 100); '' for none")
    p.add_argument("--accept-private", choices=("yes", "no"), help="accept its private SOP classes")
    p.add_argument(
        "--lenient-aet", choices=("yes", "no"), help="recognise it by its address whatever AE title it calls with"
    )
    action(
        "echo",
        cmd_echo,
        "C-ECHO a device at its host and port (calling it as Lightbox's own AE title).",
        DATA_ONLY + ("aet",),
    )
    action("discovered", cmd_discovered, "List the DICOM services announced on the LAN (DNS-SD), newest first.")
    p = action("policy", cmd_policy, "Show the device policy in force, or set it (as the web UI's Devices page does).")
    p.add_argument("policy", nargs="?", choices=POLICIES, help="learning or locked; takes effect at once")


def _host_port(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="its host name or address (default: where it associated from)")
    p.add_argument("--port", type=int, help="its own DICOM port (to C-ECHO it and send to it)")


def _yes(value: str | None) -> bool | None:
    return None if value is None else value == "yes"


def device_line(d: LearnedDevice) -> str:
    quirks = [
        q
        for q, on in (
            (f"charset={d.charset_override}", bool(d.charset_override)),
            ("accept-private", d.accept_private_sop_classes),
            ("lenient-aet", d.lenient_aet),
        )
        if on
    ]
    parts = [
        d.aet,
        f"status={d.status}",
        f"name={d.name!r}" if d.name else "",
        f"host={d.host or '-'}",
        f"port={d.port or '-'}",
        f"allow={','.join(sorted(d.allowed)) or '-'}",
        f"associations={d.associations}",
        f"refused={d.refused}",
        f"studies={d.studies_received}",
        f"images={d.images_received}",
        f"first_seen={local_time(d.first_seen)}",
        f"last_seen={local_time(d.last_seen)}",
        f"implementation={d.implementation_class_uid or '-'}/{d.implementation_version or '-'}",
        f"sop_classes={len(d.sop_classes)}",
        f"transfer_syntaxes={len(d.transfer_syntaxes)}",
        f"quirks={','.join(quirks) or '-'}",
        f"last_error={d.last_error!r}" if d.last_error else "",
    ]
    return " ".join(p for p in parts if p)


def _run(args: argparse.Namespace, change: Callable) -> int:
    """Apply ``change(devices)``, print the device (and its node)."""

    def work(archive: Archive) -> int:
        result = change(archive.devices)
        device, node = result if isinstance(result, tuple) else (result, None)
        print(f"{args.device_command.rstrip('e')}ed {device_line(device)}")
        if node is not None:
            print(f"  node {node.aet} host={node.host} port={node.port} allow={','.join(sorted(node.allowed)) or '-'}")
        return 0

    return with_archive(args, work, (DeviceError, NodeError), 2)


def service_line(s: FoundService) -> str:
    return (
        f"{s.name!r} aet={s.aet or '-'} host={s.host} port={s.port} type={s.device_type or '-'} "
        f"present={'yes' if s.present else 'no'} "
        f"first_seen={local_time(s.first_seen)} last_seen={local_time(s.last_seen)}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    return list_rows(
        args,
        lambda archive: archive.devices.all(include_ignored=args.all),
        device_line,
        "no devices yet: every device that associates with Lightbox is listed here",
    )


def cmd_discovered(args: argparse.Namespace) -> int:
    return list_rows(
        args,
        lambda archive: archive.discovered.all(),
        service_line,
        "no DICOM services announced on the LAN (or discovery is off)",
    )


def cmd_policy(args: argparse.Namespace) -> int:
    with open_archive(settings_of(args)) as archive:
        policy = archive.devices.set_policy(args.policy) if args.policy else archive.devices.policy
    print(f"device_policy={policy}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _run(args, lambda devices: devices.approve(args.device, host=args.host, port=args.port))


def cmd_rename(args: argparse.Namespace) -> int:
    return _run(args, lambda devices: devices.rename(args.device, args.name))


def cmd_ignore(args: argparse.Namespace) -> int:
    return _run(args, lambda devices: devices.ignore(args.device))


def cmd_edit(args: argparse.Namespace) -> int:
    def change(devices):
        return devices.edit(
            args.device,
            new_aet=args.new_aet,
            host=args.host,
            port=args.port,
            allowed=parse_operations(args.allow) if args.allow is not None else None,
            charset_override=args.charset,
            accept_private_sop_classes=_yes(args.accept_private),
            lenient_aet=_yes(args.lenient_aet),
        )

    return _run(args, change)


def cmd_echo(args: argparse.Namespace) -> int:
    from appliance.dicom.scu import echo_device

    settings = settings_of(args)
    with open_archive(settings) as archive:
        try:
            ok, message = echo_device(archive, args.device, archive.site.ae_title(settings.aet))
        except DeviceError as exc:
            hint = f" (lightbox device edit {args.device} --port PORT)" if isinstance(exc, NoPort) else ""
            return fail(f"{exc}{hint}", 1, args.prog)
    print(f"{'ok' if ok else 'FAILED'} {args.device}: {message}")
    return 0 if ok else 1
