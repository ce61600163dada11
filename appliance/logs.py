"""The service's log lines: one format, one line per event, with the priority journald reads
when stderr is the journal (the backup's child process logs the same way)."""

from __future__ import annotations

import logging

from appliance import systemd

FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), format=FORMAT)
    if systemd.logs_to_journal():
        for handler in logging.getLogger().handlers:
            handler.setFormatter(systemd.JournalFormatter(FORMAT))
    logging.getLogger("waitress").setLevel(logging.WARNING)
