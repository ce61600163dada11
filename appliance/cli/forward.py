"""`lightbox forward ...`: forwarding rules and their queue, thin calls into ``archive.forwarding``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from appliance.archive import ForwardError, Job, NodeError, Rule
from appliance.cli.common import add_command, fail, list_rows, local_time, open_archive, settings_of, with_archive

if TYPE_CHECKING:
    from appliance.archive import Archive


def add_commands(sub: argparse._SubParsersAction) -> None:
    forward = sub.add_parser("forward", help="Forwarding: send new studies, once stable, to a node; the retry queue.")
    actions = forward.add_subparsers(dest="forward_command", required=True, metavar="ACTION")

    p = add_command(
        actions, "add", cmd_add, "Forward every new stable study (or those matching) to a node allowed to store."
    )
    p.add_argument("--to", required=True, metavar="AET", help="the destination node's AE title")
    p.add_argument("--modality", default="", help="only studies with a series of this modality (e.g. US)")
    p.add_argument("--calling-ae", default="", help="only studies with instances sent by this AE title")
    add_command(actions, "list", cmd_list, "List the forwarding rules.")
    p = add_command(actions, "remove", cmd_remove, "Remove a rule (and the jobs it still has waiting).")
    p.add_argument("rule", type=int, metavar="RULE_ID")
    p = add_command(
        actions, "queue", cmd_queue, "Show the forwarding queue: jobs waiting (and, with --all, delivered)."
    )
    p.add_argument("--all", action="store_true", help="include delivered jobs")


def rule_line(rule: Rule) -> str:
    match = " ".join(f for f in (f"modality={rule.modality}" if rule.modality else "",
                                 f"calling_ae={rule.calling_ae}" if rule.calling_ae else "") if f)  # fmt: skip
    return f"rule {rule.id} to={rule.destination} {match or 'all studies'}"


def job_line(job: Job) -> str:
    line = (
        f"job {job.id} rule={job.rule_id} to={job.destination} study={job.study_uid} state={job.state} "
        f"attempts={job.attempts} sent={job.sent}"
    )
    if job.state == "pending":
        line += f" next_attempt={local_time(job.next_attempt_at)}"
    else:
        line += f" done={local_time(job.done_at)}"
    return line + (f" last_error={job.last_error!r}" if job.last_error else "")


def cmd_add(args: argparse.Namespace) -> int:
    def work(archive: Archive) -> int:
        rule = archive.forwarding.add_rule(args.to, args.modality, args.calling_ae)
        print(f"added {rule_line(rule)}")
        return 0

    return with_archive(args, work, (ForwardError, NodeError), 2)


def cmd_list(args: argparse.Namespace) -> int:
    return list_rows(
        args,
        lambda archive: archive.forwarding.rules(),
        rule_line,
        "no forwarding rules; add one with: lightbox forward add --to AET",
    )


def cmd_remove(args: argparse.Namespace) -> int:
    with open_archive(settings_of(args)) as archive:
        removed = archive.forwarding.remove_rule(args.rule)
    if not removed:
        return fail(f"no rule {args.rule}", 1, args.prog)
    print(f"removed rule {args.rule}")
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    return list_rows(
        args, lambda archive: archive.forwarding.queue(include_done=args.all), job_line, "the forwarding queue is empty"
    )
