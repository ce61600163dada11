"""`lightbox serve`: the whole service in this process, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse

from appliance import config
from appliance.cli.common import add_command, settings_of


def add_commands(sub: argparse._SubParsersAction) -> None:
    add_command(
        sub,
        "serve",
        cmd_serve,
        "Run Lightbox: the DICOM server (C-ECHO, C-STORE) and the HTTP server, until SIGINT/SIGTERM.",
        tuple(s.name for s in config.SETTINGS),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from appliance.logs import configure_logging
    from appliance.service import Service

    settings = settings_of(args)
    configure_logging(settings.log_level)
    service = Service(settings)
    service.start()
    service.wait()
    return 0
