"""`lightbox audit verify`: whether the audit trail's hash chain holds (``archive.audit``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from appliance.cli.common import add_command, with_archive

if TYPE_CHECKING:
    from appliance.archive import Archive


def add_commands(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("audit", help="The audit trail: check that no event was changed or deleted.")
    actions = group.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    add_command(
        actions,
        "verify",
        cmd_verify,
        "Walk the trail's hash chain; exit 1 at the first event changed, inserted or deleted. "
        "Compare the head it prints with the syslog collector's newest event or a backup's.",
    )


def cmd_verify(args: argparse.Namespace) -> int:
    def work(archive: Archive) -> int:
        verdict = archive.audit.verify()
        print(verdict.explain())
        return 0 if verdict.intact else 1

    return with_archive(args, work)
