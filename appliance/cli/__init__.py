"""`lightbox serve | import | verify | rebuild-index | node | user | backup | restore | device |
forward | delete | patient | audit | ohif`: thin calls into the same code the servers use.

This module is the one place that assembles the command groups; each group is a module of its
own (``serve``, ``upkeep``, ``node``, ``user``, ``backup``, ``device``, ``forward``,
``corrections``, ``audit``, ``ohif``) built on ``common`` (settings flags, the archive, errors), and none imports another.
"""

from __future__ import annotations

import argparse
import os

from appliance import __version__
from appliance.cli import attach, audit, backup, corrections, device, forward, node, ohif, serve, upkeep, user
from appliance.cli.common import fail, guard_terminal
from appliance.config import ConfigError

GROUPS = (
    serve,
    upkeep,
    attach,
    node,
    user,
    backup,
    device,
    forward,
    corrections,
    audit,
    ohif,
)  # the order of `lightbox --help`


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightbox",
        description="Lightbox: an appliance PACS for small clinics. "
        "Receives DICOM images, keeps them safe on disk, indexed in SQLite.",
    )
    parser.add_argument("--version", action="version", version=f"lightbox {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # what a command or the service makes holds patient data: its owner's alone
    guard_terminal()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        return fail(exc, 2)
    except KeyboardInterrupt:
        return 130
