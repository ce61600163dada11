"""`lightbox serve | import | verify | rebuild-index | node | user | backup | restore`: thin calls into the same code the servers use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from appliance.archive import DicomNode

from appliance import __version__, config
from appliance.backup.commands import add_commands as add_backup_commands
from appliance.config import ConfigError, Settings
from appliance.progress import ProgressBar

COMMON = ("data",)


def _add_setting_flags(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    parser.add_argument("--config", metavar="FILE", help="settings file (lightbox.toml); also $LIGHTBOX_CONFIG")
    for name in names:
        s = config.BY_NAME[name]
        parser.add_argument(
            s.flag,
            dest=name,
            default=None,
            metavar=name.upper().replace("_", "-") if s.kind is not bool else None,
            choices=s.choices or None,
            help=f"{s.help} (default: {s.default}; env {s.env_var})",
        )


def _settings(args: argparse.Namespace) -> Settings:
    flags = {s.name: getattr(args, s.name, None) for s in config.SETTINGS}
    return config.load(flags, args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    from appliance.service import Service, configure_logging

    settings = _settings(args)
    configure_logging(settings.log_level)
    service = Service(settings)
    service.start()
    service.wait()
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from appliance.service import open_archive

    settings = _settings(args)
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"lightbox import: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    archive = open_archive(settings)
    summary = archive.import_paths([Path(p) for p in args.paths], ProgressBar("importing"))
    print(
        f"imported: {summary.imported}  already present: {summary.already_present}  "
        f"rejected: {summary.rejected_count}  skipped (not DICOM): {summary.skipped_not_dicom}"
    )
    for reason, count in summary.rejected.most_common():
        print(f"  rejected {count}: {reason}")
    for label in summary.failed_sources[: args.show_failed]:
        print(f"  failed: {label}")
    archive.close()
    return 1 if summary.rejected_count else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from appliance.service import open_archive

    archive = open_archive(_settings(args))
    report = archive.verify(ProgressBar("verifying"))
    for uid in report.mismatched:
        print(f"MISMATCH sop_instance_uid={uid}")
    for uid in report.missing:
        print(f"MISSING sop_instance_uid={uid}")
    print(f"checked: {report.checked}  mismatched: {len(report.mismatched)}  missing: {len(report.missing)}")
    archive.close()
    return 0 if report.ok else 1


def cmd_rebuild_index(args: argparse.Namespace) -> int:
    from appliance.service import open_archive

    archive = open_archive(_settings(args))
    report = archive.rebuild_index(ProgressBar("indexing"))
    counts = archive.counts()
    print(
        f"indexed files: {len(report.indexed)}  unindexable: {len(report.unindexable)}  "
        f"patients: {counts['patients']}  studies: {counts['studies']}  instances: {counts['instances']}"
    )
    for key in report.unindexable:
        print(f"  unindexable: {key}")
    archive.close()
    return 1 if report.unindexable else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightbox",
        description="Lightbox: an appliance PACS for small clinics. "
        "Receives DICOM images, keeps them safe on disk, indexed in SQLite.",
    )
    parser.add_argument("--version", action="version", version=f"lightbox {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str, names=COMMON):
        return _add_command(sub, name, func, help_text, names)

    command(
        "serve",
        cmd_serve,
        "Run Lightbox: the DICOM server (C-ECHO, C-STORE) and the HTTP server, until SIGINT/SIGTERM.",
        tuple(s.name for s in config.SETTINGS),
    )
    p = command(
        "import",
        cmd_import,
        "Import DICOM files, folders (recursive), .zip files and CD/USB media with a DICOMDIR.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="file, folder, .zip or DICOMDIR")
    p.add_argument("--show-failed", type=int, default=20, metavar="N", help="list up to N refused files")
    command("verify", cmd_verify, "Check every stored file's SHA-256 against the index; exit 1 on any mismatch.")
    command("rebuild-index", cmd_rebuild_index, "Rebuild the index from the stored files alone.")
    _add_node_commands(sub)
    _add_user_commands(sub)
    add_backup_commands(sub, _add_command, _settings)
    from appliance import cli_corrections, cli_devices, cli_forward

    cli_devices.add_commands(sub)
    cli_forward.add_commands(sub)
    cli_corrections.add_commands(sub)
    return parser


def _add_command(
    sub: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int], help_text: str, names
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    _add_setting_flags(p, names)
    p.set_defaults(func=func)
    return p


def _add_node_commands(sub: argparse._SubParsersAction) -> None:
    from appliance.archive import OPERATIONS

    node = sub.add_parser("node", help="Known DICOM nodes: C-MOVE destinations and who may query/retrieve.")
    actions = node.add_subparsers(dest="node_command", required=True, metavar="ACTION")

    def action(name: str, func: Callable[[argparse.Namespace], int], help_text: str, names=COMMON):
        return _add_command(actions, name, func, help_text, names)

    p = action("add", cmd_node_add, "Add a node, or update the one with the same AE title.")
    p.add_argument("--aet", required=True, help="the node's AE title")
    p.add_argument("--host", required=True, help="its host name or address")
    p.add_argument("--port", required=True, type=int, help="its DICOM port")
    p.add_argument("--name", default="", help="a name for people")
    p.add_argument(
        "--allow",
        default=",".join(OPERATIONS),
        help="comma-separated operations: find, move, get (it may query/retrieve), "
        f"store (Lightbox may send to it); default {','.join(OPERATIONS)}",
    )
    action("list", cmd_node_list, "List the known nodes.")
    p = action("remove", cmd_node_remove, "Remove a node.")
    p.add_argument("aet", help="the node's AE title")
    p = action("echo", cmd_node_echo, "C-ECHO a node (calling it as Lightbox's own AE title).", COMMON + ("aet",))
    p.add_argument("node", metavar="NODE_AET", help="the node's AE title")


def _add_user_commands(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="Web UI and API accounts: admin (everything) or viewer (browse, view, download).")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    def action(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        return _add_command(actions, name, func, help_text, COMMON)

    def password_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--password-stdin", action="store_true", help="read the password from standard input (scripts)")

    p = action("add", cmd_user_add, "Add a user; the password is asked for (at least 12 characters).")
    p.add_argument("name", help="user name")
    p.add_argument("--role", choices=("admin", "viewer"), default="viewer", help="default: viewer")
    password_flag(p)
    action("list", cmd_user_list, "List the users and their roles.")
    p = action("passwd", cmd_user_passwd, "Set a user's password; ends the user's sessions.")
    p.add_argument("name", help="user name")
    password_flag(p)
    p = action("remove", cmd_user_remove, "Remove a user and end their sessions (not the last admin).")
    p.add_argument("name", help="user name")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first


def _audit(archive, action: str, detail: str) -> None:
    from appliance.archive import audit

    archive.audit.record(audit.SECURITY_ALERT, "(command line)", action=action, detail=detail)


def _user_command(args: argparse.Namespace, work: Callable) -> int:
    from appliance.archive import UserError
    from appliance.service import open_archive

    archive = open_archive(_settings(args))
    try:
        return work(archive)
    except UserError as exc:
        print(f"lightbox user {args.user_command}: {exc}", file=sys.stderr)
        return 2
    finally:
        archive.close()


def cmd_user_add(args: argparse.Namespace) -> int:
    password = _read_password(args)

    def work(archive) -> int:
        account = archive.users.add(args.name, password, args.role)
        _audit(archive, "C", f"user {account.name}: added as {account.role}")
        print(f"added {account.name} role={account.role}")
        return 0

    return _user_command(args, work)


def cmd_user_list(args: argparse.Namespace) -> int:
    def work(archive) -> int:
        accounts = archive.users.all()
        for account in accounts:
            print(f"{account.name} role={account.role}")
        if not accounts:
            print("no users; add one with: lightbox user add NAME --role admin (or use the web UI's first-run setup)")
        return 0

    return _user_command(args, work)


def _change_user(args: argparse.Namespace, change: Callable, action: str, what: str) -> int:
    """Apply ``change(archive) -> found`` to the user ``args.name``; audit and report it."""

    def work(archive) -> int:
        if not change(archive):
            print(f"lightbox user {args.user_command}: no user {args.name!r}", file=sys.stderr)
            return 1
        _audit(archive, action, f"user {args.name}: {what}")
        print(f"{args.name}: {what}")
        return 0

    return _user_command(args, work)


def cmd_user_passwd(args: argparse.Namespace) -> int:
    password = _read_password(args)
    return _change_user(
        args, lambda archive: archive.users.set_password(args.name, password), "U", "password changed, sessions ended"
    )


def cmd_user_remove(args: argparse.Namespace) -> int:
    return _change_user(args, lambda archive: archive.users.remove(args.name), "D", "removed, sessions ended")


def cmd_node_add(args: argparse.Namespace) -> int:
    from appliance.archive import NodeError, parse_operations
    from appliance.service import open_archive

    archive = open_archive(_settings(args))
    try:
        node, created = archive.devices.save_node(args.aet, args.host, args.port, args.name, parse_operations(args.allow))
    except NodeError as exc:
        print(f"lightbox node add: {exc}", file=sys.stderr)
        return 2
    finally:
        archive.close()
    print(f"{'added' if created else 'updated'} {_node_line(node)}")
    return 0


def cmd_node_list(args: argparse.Namespace) -> int:
    from appliance.service import open_archive

    archive = open_archive(_settings(args))
    nodes = archive.nodes.all()
    archive.close()
    for node in nodes:
        print(_node_line(node))
    if not nodes:
        print("no nodes; add one with: lightbox node add --aet AET --host HOST --port PORT")
    return 0


def cmd_node_remove(args: argparse.Namespace) -> int:
    from appliance.archive import NodeError
    from appliance.service import open_archive

    archive = open_archive(_settings(args))
    try:
        removed = archive.devices.remove_node(args.aet)
    except NodeError as exc:
        print(f"lightbox node remove: {exc}", file=sys.stderr)
        return 2
    finally:
        archive.close()
    print(f"removed {args.aet}" if removed else f"lightbox node remove: no node {args.aet!r}", file=None if removed else sys.stderr)
    return 0 if removed else 1


def cmd_node_echo(args: argparse.Namespace) -> int:
    from appliance.dicom.scu import echo
    from appliance.service import open_archive

    settings = _settings(args)
    archive = open_archive(settings)
    node = archive.nodes.get(args.node)
    archive.close()
    if node is None:
        print(f"lightbox node echo: no node {args.node!r}", file=sys.stderr)
        return 1
    ok, message = echo(node, settings.aet)
    print(f"{'ok' if ok else 'FAILED'} {node.aet}@{node.host}:{node.port}: {message}")
    return 0 if ok else 1


def _node_line(node: DicomNode) -> str:
    name = f" name={node.name!r}" if node.name else ""
    return f"{node.aet} host={node.host} port={node.port}{name} allow={','.join(sorted(node.allowed)) or '-'}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"lightbox: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
