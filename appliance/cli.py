"""`lightbox serve | import | verify | rebuild-index`: thin calls into the same code the servers use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from appliance import __version__, config
from appliance.config import ConfigError, Settings
from appliance.progress import ProgressBar

COMMON = ("data",)


def _add_setting_flags(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    parser.add_argument("--config", metavar="FILE", help="settings file (lightbox.toml); also $LIGHTBOX_CONFIG")
    for name in names:
        s = config.BY_NAME[name]
        parser.add_argument(
            s.flag,
            dest=name,
            default=None,
            metavar=name.upper().replace("_", "-") if s.kind is not bool else None,
            choices=s.choices or None,
            help=f"{s.help} (default: {s.default}; env {s.env_var})",
        )


def _settings(args: argparse.Namespace) -> Settings:
    flags = {s.name: getattr(args, s.name, None) for s in config.SETTINGS}
    return config.load(flags, args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    from appliance.service import Service, configure_logging

    settings = _settings(args)
    configure_logging(settings.log_level)
    service = Service(settings)
    service.start()
    service.wait()
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from appliance.service import open_archive

    settings = _settings(args)
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"lightbox import: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    archive = open_archive(settings)
    summary = archive.import_paths([Path(p) for p in args.paths], ProgressBar("importing"))
    print(
        f"imported: {summary.imported}  already present: {summary.already_present}  "
        f"rejected: {summary.rejected_count}  skipped (not DICOM): {summary.skipped_not_dicom}"
    )
    for reason, count in summary.rejected.most_common():
        print(f"  rejected {count}: {reason}")
    for label in summary.failed_sources[: args.show_failed]:
        print(f"  failed: {label}")
    archive.close()
    return 1 if summary.rejected_count else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from appliance.service import open_archive

    archive = open_archive(_settings(args))
    report = archive.verify(ProgressBar("verifying"))
    for uid in report.mismatched:
        print(f"MISMATCH sop_instance_uid={uid}")
    for uid in report.missing:
        print(f"MISSING sop_instance_uid={uid}")
    print(f"checked: {report.checked}  mismatched: {len(report.mismatched)}  missing: {len(report.missing)}")
    archive.close()
    return 0 if report.ok else 1


def cmd_rebuild_index(args: argparse.Namespace) -> int:
    from appliance.service import open_archive

    archive = open_archive(_settings(args))
    report = archive.rebuild_index(ProgressBar("indexing"))
    counts = archive.counts()
    print(
        f"indexed files: {len(report.indexed)}  unindexable: {len(report.unindexable)}  "
        f"patients: {counts['patients']}  studies: {counts['studies']}  instances: {counts['instances']}"
    )
    for key in report.unindexable:
        print(f"  unindexable: {key}")
    archive.close()
    return 1 if report.unindexable else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightbox",
        description="Lightbox: an appliance PACS for small clinics. "
        "Receives DICOM images, keeps them safe on disk, indexed in SQLite.",
    )
    parser.add_argument("--version", action="version", version=f"lightbox {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str, names=COMMON):
        p = sub.add_parser(name, help=help_text, description=help_text)
        _add_setting_flags(p, names)
        p.set_defaults(func=func)
        return p

    command(
        "serve",
        cmd_serve,
        "Run Lightbox: the DICOM server (C-ECHO, C-STORE) and the HTTP server, until SIGINT/SIGTERM.",
        tuple(s.name for s in config.SETTINGS),
    )
    p = command(
        "import",
        cmd_import,
        "Import DICOM files, folders (recursive), .zip files and CD/USB media with a DICOMDIR.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="file, folder, .zip or DICOMDIR")
    p.add_argument("--show-failed", type=int, default=20, metavar="N", help="list up to N refused files")
    command("verify", cmd_verify, "Check every stored file's SHA-256 against the index; exit 1 on any mismatch.")
    command("rebuild-index", cmd_rebuild_index, "Rebuild the index from the stored files alone.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"lightbox: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
