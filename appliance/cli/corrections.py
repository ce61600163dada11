"""`lightbox delete ...` and `lightbox patient ...`: deleting and correcting what is stored,
thin calls into ``archive.corrections`` (audited as the command line)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.archive import DELETABLE_LEVELS, CorrectionError, Identity
from appliance.cli.common import add_command, command_line_user, with_archive

if TYPE_CHECKING:
    from appliance.archive import Archive


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "delete", cmd_delete, "Delete a study, a series or an instance (asks to type the Patient ID).")
    p.add_argument("level", choices=DELETABLE_LEVELS)
    p.add_argument("uid", help="its Study, Series or SOP Instance UID")
    p.add_argument("--confirm", metavar="PATIENT_ID", help="the Patient ID (or 'delete' if it has none), for scripts")

    patient = sub.add_parser(
        "patient", help="Fix a patient's identity: edit the name, ID, birth date of studies; merge two patients."
    )
    actions = patient.add_subparsers(dest="patient_command", required=True, metavar="ACTION")

    p = add_command(actions, "show", cmd_show, "Show the patient identity of a study.")
    p.add_argument("study", metavar="STUDY_UID")
    p = add_command(
        actions,
        "edit",
        cmd_edit,
        "Set the patient's name, ID, issuer or birth date of a study "
        "(files rewritten, originals kept until backed up).",
    )
    p.add_argument("study", metavar="STUDY_UID")
    p.add_argument("--name", help="Patient Name as DICOM writes it: FAMILY^GIVEN")
    p.add_argument("--id", dest="patient_id", help="Patient ID")
    p.add_argument("--issuer", help="Issuer of Patient ID")
    p.add_argument("--birth-date", help="YYYYMMDD, or '' to clear")
    p.add_argument("--all-studies", action="store_true", help="every study of this patient identity, not just this one")
    p = add_command(
        actions,
        "merge",
        cmd_merge,
        "Give every study of one patient the identity of another's "
        "(the first study's patient is merged into the second's).",
    )
    p.add_argument("from_study", metavar="FROM_STUDY_UID", help="a study of the patient that goes away")
    p.add_argument("into_study", metavar="INTO_STUDY_UID", help="a study of the patient that stays")


def _run(args: argparse.Namespace, work: Callable[[Archive], int]) -> int:
    return with_archive(args, work, (CorrectionError, LookupError), 1)


def cmd_delete(args: argparse.Namespace) -> int:
    def work(archive: Archive) -> int:
        target = archive.describe(args.level, args.uid)
        if target is None:
            raise LookupError(f"no {args.level} {args.uid}")
        print(f"Deleting the {target.summary()}")
        confirmation = args.confirm
        if confirmation is None:
            if not sys.stdin.isatty():
                raise CorrectionError("give --confirm PATIENT_ID (no terminal to ask on)")
            what = f"the Patient ID ({target.patient_id})" if target.patient_id else "delete"
            confirmation = input(f"Type {what} to delete it: ")
        deleted = archive.corrections.delete(args.level, args.uid, confirmation, command_line_user())
        print(f"deleted: {deleted.instances} instances, {deleted.bytes} bytes")
        return 0

    return _run(args, work)


def _identity_of(archive: Archive, study: str) -> Identity:
    identity = archive.identity_of(study)
    if identity is None:
        raise LookupError(f"no study {study}")
    return identity


def cmd_show(args: argparse.Namespace) -> int:
    def work(archive: Archive) -> int:
        identity = _identity_of(archive, args.study)
        print(
            f"name={identity.name!r} id={identity.patient_id!r} issuer={identity.issuer!r} "
            f"birth_date={identity.birth_date!r}"
        )
        return 0

    return _run(args, work)


def cmd_edit(args: argparse.Namespace) -> int:
    def work(archive: Archive) -> int:
        old = _identity_of(archive, args.study)
        new = Identity(
            args.name if args.name is not None else old.name,
            args.patient_id if args.patient_id is not None else old.patient_id,
            args.issuer if args.issuer is not None else old.issuer,
            args.birth_date if args.birth_date is not None else old.birth_date,
        )
        studies = archive.studies_of_patient(args.study) if args.all_studies else [args.study]
        report = archive.corrections.edit_identity(studies, new, command_line_user())
        print(
            f"edited: {report.studies} studies, {report.instances} instances rewritten (originals kept until backed up)"
        )
        return 0

    return _run(args, work)


def cmd_merge(args: argparse.Namespace) -> int:
    def work(archive: Archive) -> int:
        report = archive.corrections.merge(args.from_study, args.into_study, command_line_user())
        print(
            f"merged: {report.studies} studies, {report.instances} instances rewritten (originals kept until backed up)"
        )
        return 0

    return _run(args, work)
