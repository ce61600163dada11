"""`lightbox delete ...` and `lightbox patient ...`: deleting and correcting what is stored,
thin calls into ``archive.corrections`` (audited as the command line)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Callable

from appliance.archive import DELETABLE_LEVELS, CorrectionError, Identity
from appliance.cli import COMMON, _add_command, _settings


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = _add_command(sub, "delete", cmd_delete, "Delete a study, a series or an instance (asks to type the Patient ID).", COMMON)
    p.add_argument("level", choices=DELETABLE_LEVELS)
    p.add_argument("uid", help="its Study, Series or SOP Instance UID")
    p.add_argument("--confirm", metavar="PATIENT_ID", help="the Patient ID (or 'delete' if it has none), for scripts")

    patient = sub.add_parser("patient", help="Fix a patient's identity: edit the name, ID, birth date of studies; merge two patients.")
    actions = patient.add_subparsers(dest="patient_command", required=True, metavar="ACTION")

    def action(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        return _add_command(actions, name, func, help_text, COMMON)

    p = action("show", cmd_show, "Show the patient identity of a study.")
    p.add_argument("study", metavar="STUDY_UID")
    p = action("edit", cmd_edit, "Set the patient's name, ID, issuer or birth date of a study (files rewritten, originals kept until backed up).")
    p.add_argument("study", metavar="STUDY_UID")
    p.add_argument("--name", help="Patient Name as DICOM writes it: FAMILY^GIVEN")
    p.add_argument("--id", dest="patient_id", help="Patient ID")
    p.add_argument("--issuer", help="Issuer of Patient ID")
    p.add_argument("--birth-date", help="YYYYMMDD, or '' to clear")
    p.add_argument("--all-studies", action="store_true", help="every study of this patient identity, not just this one")
    p = action("merge", cmd_merge, "Give every study of one patient the identity of another's (the first study's patient is merged into the second's).")
    p.add_argument("from_study", metavar="FROM_STUDY_UID", help="a study of the patient that goes away")
    p.add_argument("into_study", metavar="INTO_STUDY_UID", help="a study of the patient that stays")


def _user() -> str:
    return f"{getpass.getuser()} (command line)"


def _run(args: argparse.Namespace, name: str, work: Callable) -> int:
    from appliance.service import open_archive

    archive = open_archive(_settings(args))
    try:
        return work(archive)
    except (CorrectionError, LookupError) as exc:
        print(f"lightbox {name}: {exc}", file=sys.stderr)
        return 1
    finally:
        archive.close()


def cmd_delete(args: argparse.Namespace) -> int:
    def work(archive) -> int:
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
        deleted = archive.corrections.delete(args.level, args.uid, confirmation, _user())
        print(f"deleted: {deleted.instances} instances, {deleted.bytes} bytes")
        return 0

    return _run(args, "delete", work)


def cmd_show(args: argparse.Namespace) -> int:
    def work(archive) -> int:
        identity = archive.identity_of(args.study)
        if identity is None:
            raise LookupError(f"no study {args.study}")
        print(f"name={identity.name!r} id={identity.patient_id!r} issuer={identity.issuer!r} birth_date={identity.birth_date!r}")
        return 0

    return _run(args, "patient show", work)


def cmd_edit(args: argparse.Namespace) -> int:
    def work(archive) -> int:
        old = archive.identity_of(args.study)
        if old is None:
            raise LookupError(f"no study {args.study}")
        new = Identity(
            args.name if args.name is not None else old.name,
            args.patient_id if args.patient_id is not None else old.patient_id,
            args.issuer if args.issuer is not None else old.issuer,
            args.birth_date if args.birth_date is not None else old.birth_date,
        )
        studies = archive.studies_of_patient(args.study) if args.all_studies else [args.study]
        report = archive.corrections.edit_identity(studies, new, _user())
        print(f"edited: {report.studies} studies, {report.instances} instances rewritten (originals kept until backed up)")
        return 0

    return _run(args, "patient edit", work)


def cmd_merge(args: argparse.Namespace) -> int:
    def work(archive) -> int:
        report = archive.corrections.merge(args.from_study, args.into_study, _user())
        print(f"merged: {report.studies} studies, {report.instances} instances rewritten (originals kept until backed up)")
        return 0

    return _run(args, "patient merge", work)
