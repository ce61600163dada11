"""`lightbox user ...`: web UI and API accounts, thin calls into ``archive.users`` (audited)."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.archive import UserError, audit
from appliance.cli.common import COMMAND_LINE, add_command, fail, list_rows, with_archive
from appliance.config import ConfigError

if TYPE_CHECKING:
    from appliance.archive import Archive


def add_commands(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser(
        "user", help="Web UI and API accounts: admin (everything) or viewer (browse, view, download)."
    )
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    def password_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--password-stdin", action="store_true", help="read the password from standard input (scripts)")

    p = add_command(actions, "add", cmd_add, "Add a user; the password is asked for (at least 12 characters).")
    p.add_argument("name", help="user name")
    p.add_argument("--role", choices=("admin", "viewer"), default="viewer", help="default: viewer")
    password_flag(p)
    add_command(actions, "list", cmd_list, "List the users and their roles.")
    p = add_command(actions, "passwd", cmd_passwd, "Set a user's password; ends the user's sessions.")
    p.add_argument("name", help="user name")
    password_flag(p)
    p = add_command(actions, "remove", cmd_remove, "Remove a user and end their sessions (not the last admin).")
    p.add_argument("name", help="user name")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first


def _audit(archive: Archive, action: str, detail: str) -> None:
    archive.audit.record(audit.SECURITY_ALERT, COMMAND_LINE, action=action, detail=detail)


def _run(args: argparse.Namespace, work: Callable[[Archive], int]) -> int:
    return with_archive(args, work, (UserError,), 2)


def cmd_add(args: argparse.Namespace) -> int:
    password = _read_password(args)

    def work(archive: Archive) -> int:
        account = archive.users.add(args.name, password, args.role)
        _audit(archive, "C", f"user {account.name}: added as {account.role}")
        print(f"added {account.name} role={account.role}")
        return 0

    return _run(args, work)


def cmd_list(args: argparse.Namespace) -> int:
    return list_rows(
        args,
        lambda archive: archive.users.all(),
        lambda account: f"{account.name} role={account.role}",
        "no users; add one with: lightbox user add NAME --role admin (or use the web UI's first-run setup)",
    )


def _change_user(args: argparse.Namespace, change: Callable[[Archive], bool], action: str, what: str) -> int:
    """Apply ``change(archive) -> found`` to the user ``args.name``; audit and report it."""

    def work(archive: Archive) -> int:
        if not change(archive):
            return fail(f"no user {args.name!r}", 1, args.prog)
        _audit(archive, action, f"user {args.name}: {what}")
        print(f"{args.name}: {what}")
        return 0

    return _run(args, work)


def cmd_passwd(args: argparse.Namespace) -> int:
    password = _read_password(args)
    return _change_user(
        args, lambda archive: archive.users.set_password(args.name, password), "U", "password changed, sessions ended"
    )


def cmd_remove(args: argparse.Namespace) -> int:
    return _change_user(args, lambda archive: archive.users.remove(args.name), "D", "removed, sessions ended")
