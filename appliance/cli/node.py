"""`lightbox node ...`: known DICOM nodes, thin calls into ``archive.devices`` and ``archive.nodes``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from appliance import certificates
from appliance.archive import OPERATIONS, NodeError, parse_operations
from appliance.certificates import fingerprint
from appliance.cli.common import DATA_ONLY, add_command, fail, list_rows, open_archive, settings_of, with_archive

if TYPE_CHECKING:
    from appliance.archive import Archive, DicomNode


def add_commands(sub: argparse._SubParsersAction) -> None:
    node = sub.add_parser("node", help="Known DICOM nodes: C-MOVE destinations and who may query/retrieve.")
    actions = node.add_subparsers(dest="node_command", required=True, metavar="ACTION")

    p = add_command(actions, "add", cmd_add, "Add a node, or update the one with the same AE title.")
    p.add_argument("--aet", required=True, help="the node's AE title")
    p.add_argument("--host", required=True, help="its host name or address")
    p.add_argument("--port", required=True, type=int, help="its DICOM port")
    p.add_argument("--name", default="", help="a name for people")
    p.add_argument(
        "--allow",
        default=",".join(OPERATIONS),
        help="comma-separated operations: find, move, get (it may query/retrieve), "
        f"store (Lightbox may send to it), commit (it may ask for storage commitment); default {','.join(OPERATIONS)}",
    )
    p.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Lightbox connects to it over DICOM TLS (needs --trust); default: as it was, else no",
    )
    p.add_argument(
        "--trust",
        metavar="PEM_FILE",
        help="its certificate, or the CA that signs it: checked when Lightbox connects to it over TLS, and when it "
        "connects to Lightbox's TLS port; an empty file removes it",
    )
    add_command(actions, "list", cmd_list, "List the known nodes.")
    p = add_command(actions, "remove", cmd_remove, "Remove a node.")
    p.add_argument("aet", help="the node's AE title")
    p = add_command(
        actions, "echo", cmd_echo, "C-ECHO a node (calling it as Lightbox's own AE title).", DATA_ONLY + ("aet",)
    )
    p.add_argument("node", metavar="NODE_AET", help="the node's AE title")


def node_line(node: DicomNode) -> str:
    name = f" name={node.name!r}" if node.name else ""
    tls = " tls" if node.tls else ""
    trust = f" trusts={fingerprint(node.tls_trust)}" if node.tls_trust else ""
    return (
        f"{node.aet} host={node.host} port={node.port}{name} allow={','.join(sorted(node.allowed)) or '-'}{tls}{trust}"
    )


def cmd_add(args: argparse.Namespace) -> int:
    try:
        trust = Path(args.trust).read_text(encoding="ascii") if args.trust is not None else None
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"cannot read {args.trust}: {exc}", 2, args.prog)

    def work(archive: Archive) -> int:
        node, created = archive.devices.save_node(
            args.aet, args.host, args.port, args.name, parse_operations(args.allow), tls=args.tls, tls_trust=trust
        )
        print(f"{'added' if created else 'updated'} {node_line(node)}")
        return 0

    return with_archive(args, work, (NodeError,), 2)


def cmd_list(args: argparse.Namespace) -> int:
    return list_rows(
        args,
        lambda archive: archive.nodes.all(),
        node_line,
        "no nodes; add one with: lightbox node add --aet AET --host HOST --port PORT",
    )


def cmd_remove(args: argparse.Namespace) -> int:
    def work(archive: Archive) -> int:
        if not archive.devices.remove_node(args.aet):
            return fail(f"no node {args.aet!r}", 1, args.prog)
        print(f"removed {args.aet}")
        return 0

    return with_archive(args, work, (NodeError,), 2)


def cmd_echo(args: argparse.Namespace) -> int:
    from appliance.dicom.scu import echo

    settings = settings_of(args)
    with open_archive(settings) as archive:
        node, calling_aet = archive.nodes.get(args.node), archive.site.ae_title(settings.aet)
    if node is None:
        return fail(f"no node {args.node!r}", 1, args.prog)
    ok, message = echo(node, calling_aet, identity=certificates.identity(settings) if node.tls else None)
    print(f"{'ok' if ok else 'FAILED'} {node.aet}@{node.host}:{node.port}: {message}")
    return 0 if ok else 1
