"""What every command group needs: the settings flags from the config table, the archive,
the way a command says it failed, and who the audit trail records for the command line."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from appliance import config
from appliance.config import Settings

if TYPE_CHECKING:
    from appliance.archive import Archive

Command = Callable[[argparse.Namespace], int]
Row = TypeVar("Row")
DATA_ONLY = ("data",)  # the one setting most commands need: where the archive is
COMMAND_LINE = "(command line)"  # the audit trail's user for what was done here, not on the web


# Control characters (C0 but tab and newline, DEL, C1) and the bidirectional overrides, each
# written as its escape: an AE title, a patient name or a DNS-SD name is chosen by whoever is on
# the LAN, and an escape sequence in one must not reach the admin's terminal.
_UNSAFE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if chr(c) not in "\n\t"}
_UNSAFE |= {c: f"\\u{c:04x}" for c in (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))}


class TerminalSafe:
    """A command's stdout or stderr, writing those characters escaped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(text.translate(_UNSAFE))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def guard_terminal() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, TerminalSafe):
            setattr(sys, name, TerminalSafe(stream))


def add_command(
    sub: argparse._SubParsersAction, name: str, func: Command, help_text: str, names: tuple[str, ...] = DATA_ONLY
) -> argparse.ArgumentParser:
    """A (sub)command with ``--config`` and the flags of the settings ``names``."""
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--config", metavar="FILE", help="settings file (lightbox.toml); also $LIGHTBOX_CONFIG")
    for setting in (config.BY_NAME[n] for n in names):
        p.add_argument(
            setting.flag,
            dest=setting.name,
            default=None,
            metavar=setting.name.upper().replace("_", "-") if setting.kind is not bool else None,
            choices=setting.choices or None,
            help=f"{setting.help} (default: {setting.default}; env {setting.env_var})",
        )
    # ``prog`` ("lightbox node add") names the command in its error messages, as argparse's own do.
    p.set_defaults(func=func, prog=p.prog)
    return p


def settings_of(args: argparse.Namespace) -> Settings:
    flags = {s.name: getattr(args, s.name, None) for s in config.SETTINGS}
    return config.load(flags, args.config)


def open_archive(settings: Settings) -> Archive:
    """The archive as the service opens it; imported here, not at the top, so that the parser
    and ``--help`` stay free of the DICOM and web servers' modules."""
    from appliance.service import open_archive as service_open_archive

    return service_open_archive(settings)


def fail(message: object, code: int = 1, prog: str = "lightbox") -> int:
    """Say what went wrong on stderr (``lightbox node add: no such node``); return the exit code."""
    print(f"{prog}: {message}", file=sys.stderr)
    return code


def with_archive(
    args: argparse.Namespace,
    work: Callable[[Archive], int],
    refusals: tuple[type[Exception], ...] = (),
    code: int = 1,
) -> int:
    """Run ``work(archive)``; an exception of ``refusals`` is a refusal the user reads, exit ``code``."""
    with open_archive(settings_of(args)) as archive:
        try:
            return work(archive)
        except refusals as exc:
            return fail(exc, code, args.prog)


def list_rows(
    args: argparse.Namespace, rows: Callable[[Archive], Sequence[Row]], line: Callable[[Row], str], empty: str
) -> int:
    """A list command: one line per row, or ``empty`` (what to do about it) when there are none."""
    with open_archive(settings_of(args)) as archive:
        found = rows(archive)
    for row in found:
        print(line(row))
    if not found:
        print(empty)
    return 0


def command_line_user() -> str:
    """Who the audit trail records for a change to what is stored: the login, on the command line."""
    return f"{getpass.getuser()} {COMMAND_LINE}"


def local_time(at: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(at)) if at else "-"
