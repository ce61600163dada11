"""`lightbox ohif install`: the OHIF viewer's pinned build, served by Lightbox under /ohif/."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance import ohif
from appliance.cli.common import add_command, fail, settings_of


def add_commands(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("ohif", help="The OHIF web viewer, served by Lightbox under /ohif/.")
    actions = group.add_subparsers(dest="ohif_command", required=True, metavar="ACTION")
    p = add_command(
        actions,
        "install",
        cmd_install,
        f"Install OHIF {ohif.VERSION} into the data folder: downloaded from the npm registry "
        f"(about 50 MB; 215 MB unpacked) or taken from --from, and refused unless its SHA-512 is the "
        "pinned one. Does nothing when that version is installed already (--force installs again).",
    )
    p.add_argument("--from", dest="tarball", metavar="FILE.tgz", type=Path,
                   help=f"a local copy of {ohif.TARBALL_URL}")  # fmt: skip
    p.add_argument("--force", action="store_true", help="install again even if this version is installed")


def cmd_install(args: argparse.Namespace) -> int:
    data = Path(settings_of(args).data)
    if ohif.installed_version(data) == ohif.VERSION and not (args.force or args.tarball):
        print(f"OHIF {ohif.VERSION} is installed already in {ohif.dist_dir(data)}")
        return 0
    if args.tarball is not None and not args.tarball.is_file():
        return fail(f"{args.tarball}: no such file", 2, args.prog)
    print(f"installing OHIF {ohif.VERSION} from {args.tarball or ohif.TARBALL_URL}", flush=True)
    try:
        folder = ohif.install(data, args.tarball)
    except ohif.OhifError as exc:
        return fail(exc, 1, args.prog)
    print(f"OHIF {ohif.VERSION} installed in {folder}; Lightbox serves it at {ohif.PREFIX}")
    return 0
