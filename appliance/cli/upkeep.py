"""`lightbox import | verify | rebuild-index`: filling the archive and keeping storage and
index true, with a progress bar and a summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.cli.common import add_command, fail, open_archive, settings_of
from appliance.progress import ProgressBar


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "import",
        cmd_import,
        "Import DICOM files, folders (recursive), .zip files and CD/USB media with a DICOMDIR.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="file, folder, .zip or DICOMDIR")
    p.add_argument("--show-failed", type=int, default=20, metavar="N", help="list up to N refused files")
    add_command(
        sub, "verify", cmd_verify, "Check every stored file's SHA-256 against the index; exit 1 on any mismatch."
    )
    add_command(sub, "rebuild-index", cmd_rebuild_index, "Rebuild the index from the stored files alone.")


def cmd_import(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        return fail(f"no such file or folder: {', '.join(missing)}", 2, args.prog)
    with open_archive(settings) as archive:
        summary = archive.import_paths([Path(p) for p in args.paths], ProgressBar("importing"))
    print(
        f"imported: {summary.imported}  already present: {summary.already_present}  "
        f"rejected: {summary.rejected_count}  skipped (not DICOM): {summary.skipped_not_dicom}"
    )
    for reason, count in summary.rejected.most_common():
        print(f"  rejected {count}: {reason}")
    for label in summary.failed_sources[: args.show_failed]:
        print(f"  failed: {label}")
    return 1 if summary.rejected_count else 0


def cmd_verify(args: argparse.Namespace) -> int:
    with open_archive(settings_of(args)) as archive:
        report = archive.verify(ProgressBar("verifying"))
    for uid in report.mismatched:
        print(f"MISMATCH sop_instance_uid={uid}")
    for uid in report.missing:
        print(f"MISSING sop_instance_uid={uid}")
    print(f"checked: {report.checked}  mismatched: {len(report.mismatched)}  missing: {len(report.missing)}")
    return 0 if report.ok else 1


def cmd_rebuild_index(args: argparse.Namespace) -> int:
    with open_archive(settings_of(args)) as archive:
        report = archive.rebuild_index(ProgressBar("indexing"))
        counts = archive.counts()
    print(
        f"indexed files: {len(report.indexed)}  unindexable: {len(report.unindexable)}  "
        f"patients: {counts['patients']}  studies: {counts['studies']}  instances: {counts['instances']}"
    )
    for key in report.unindexable:
        print(f"  unindexable: {key}")
    return 1 if report.unindexable else 0
