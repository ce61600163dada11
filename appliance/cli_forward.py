"""`lightbox forward ...`: forwarding rules and their queue, thin calls into ``archive.forwarding``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

from appliance.archive import ForwardError, Job, Rule
from appliance.archive import NodeError
from appliance.cli import COMMON, _add_command, _settings


def add_commands(sub: argparse._SubParsersAction) -> None:
    forward = sub.add_parser("forward", help="Forwarding: send new studies, once stable, to a node; the retry queue.")
    actions = forward.add_subparsers(dest="forward_command", required=True, metavar="ACTION")

    def action(name: str, func: Callable[[argparse.Namespace], int], help_text: str):
        return _add_command(actions, name, func, help_text, COMMON)

    p = action("add", cmd_add, "Forward every new stable study (or those matching) to a node allowed to store.")
    p.add_argument("--to", required=True, metavar="AET", help="the destination node's AE title")
    p.add_argument("--modality", default="", help="only studies with a series of this modality (e.g. US)")
    p.add_argument("--calling-ae", default="", help="only studies with instances sent by this AE title")
    action("list", cmd_list, "List the forwarding rules.")
    p = action("remove", cmd_remove, "Remove a rule (and the jobs it still has waiting).")
    p.add_argument("rule", type=int, metavar="RULE_ID")
    p = action("queue", cmd_queue, "Show the forwarding queue: jobs waiting (and, with --all, delivered).")
    p.add_argument("--all", action="store_true", help="include delivered jobs")


def rule_line(rule: Rule) -> str:
    match = " ".join(f for f in (f"modality={rule.modality}" if rule.modality else "",
                                 f"calling_ae={rule.calling_ae}" if rule.calling_ae else "") if f)  # fmt: skip
    return f"rule {rule.id} to={rule.destination} {match or 'all studies'}"


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(at)) if at else "-"


def job_line(job: Job) -> str:
    line = (
        f"job {job.id} rule={job.rule_id} to={job.destination} study={job.study_uid} state={job.state} "
        f"attempts={job.attempts} sent={job.sent}"
    )
    if job.state == "pending":
        line += f" next_attempt={_when(job.next_attempt_at)}"
    else:
        line += f" done={_when(job.done_at)}"
    return line + (f" last_error={job.last_error!r}" if job.last_error else "")


def _open(args: argparse.Namespace):
    from appliance.service import open_archive

    return open_archive(_settings(args))


def cmd_add(args: argparse.Namespace) -> int:
    archive = _open(args)
    try:
        rule = archive.forwarding.add_rule(args.to, args.modality, args.calling_ae)
    except (ForwardError, NodeError) as exc:
        print(f"lightbox forward add: {exc}", file=sys.stderr)
        return 2
    finally:
        archive.close()
    print(f"added {rule_line(rule)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    archive = _open(args)
    rules = archive.forwarding.rules()
    archive.close()
    for rule in rules:
        print(rule_line(rule))
    if not rules:
        print("no forwarding rules; add one with: lightbox forward add --to AET")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    archive = _open(args)
    removed = archive.forwarding.remove_rule(args.rule)
    archive.close()
    if not removed:
        print(f"lightbox forward remove: no rule {args.rule}", file=sys.stderr)
        return 1
    print(f"removed rule {args.rule}")
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    archive = _open(args)
    jobs = archive.forwarding.queue(include_done=args.all)
    archive.close()
    for job in jobs:
        print(job_line(job))
    if not jobs:
        print("the forwarding queue is empty")
    return 0
