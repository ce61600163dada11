"""`lightbox attach STUDY_UID FILE...`: documents, photos and videos into a study from the
command line, each through the same path as the study page's (appliance/attachments); the
archive is opened next to a running service as `lightbox import` does."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path

from appliance.archive import Origin, audit
from appliance.cli.common import add_command, fail, open_archive, settings_of

NAMES = ("data", "video_ffmpeg", "attach_max_mb")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "attach",
        cmd_attach,
        "Attach files to a study, each as a new series: PDF, JPEG, PNG, BMP, MP4 (kept as is), "
        "AVI and other videos (re-encoded to H.264 by ffmpeg).",
        NAMES,
    )
    p.add_argument("study_uid", metavar="STUDY_UID", help="the study's Study Instance UID")
    p.add_argument("files", nargs="+", metavar="FILE")


def cmd_attach(args: argparse.Namespace) -> int:
    from appliance.attachments.attach import Refused, attach  # the archive's modules: not for --help
    from appliance.imaging.ffmpeg import Ffmpeg
    from appliance.made.storing import NotStored

    settings = settings_of(args)
    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        return fail(f"no such file: {', '.join(missing)}", 2, args.prog)
    user = getpass.getuser()
    failed = 0
    with open_archive(settings) as archive:
        for name in args.files:
            try:
                done = attach(archive, args.study_uid, Path(name), name, Origin("import", user=user),
                              Ffmpeg(Path(settings.video_ffmpeg)), settings.attach_max_mb << 20)  # fmt: skip
            except LookupError:
                return fail(f"no such study: {args.study_uid}", 2, args.prog)
            except (Refused, NotStored) as exc:
                failed += 1
                fail(f"{name}: not attached: {exc}", 1, args.prog)
                archive.audit.record(audit.INSTANCES_ACCESSED, user, "", action="C", study_uid=args.study_uid,
                                     outcome=4, detail=f"attachment refused: {exc}"[:200])  # fmt: skip
                continue
            archive.audit.record(audit.INSTANCES_ACCESSED, user, "", action="C", study_uid=args.study_uid,
                                 detail=f"{done.kind} attached ({done.how}) from the command line")  # fmt: skip
            print(f"{name}: attached as {done.kind} ({done.how}), series {done.series_uid}")
    return 1 if failed else 0
