"""DICOM services found on the LAN by DNS-SD browsing (written by ``appliance.discovery``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from peewee import SqliteDatabase

from appliance.archive.registry.models import DiscoveredService
from appliance.archive.writelock import WriteLock


@dataclass(frozen=True)
class FoundService:
    name: str
    service_type: str
    aet: str
    host: str
    port: int
    device_type: str
    txt: dict[str, str]
    first_seen: float = 0.0
    last_seen: float = 0.0
    present: bool = True


def _found(row: DiscoveredService) -> FoundService:
    return FoundService(
        row.name, row.service_type, row.aet, row.host, row.port, row.device_type, json.loads(row.txt),
        row.first_seen, row.last_seen, row.present,
    )  # fmt: skip


class DiscoveredTable:
    def __init__(self, db: SqliteDatabase, write_lock: WriteLock) -> None:
        self.db = db
        self.write_lock = write_lock

    def seen(self, service: FoundService, now: float | None = None) -> None:
        """Record a service as announced now (new, changed, or still there)."""
        now = time.time() if now is None else now
        values = dict(
            service_type=service.service_type,
            aet=service.aet,
            host=service.host,
            port=service.port,
            device_type=service.device_type,
            txt=json.dumps(service.txt, sort_keys=True),
            last_seen=now,
            present=True,
        )
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            if DiscoveredService.update(values).where(DiscoveredService.name == service.name).execute() == 0:
                DiscoveredService.create(name=service.name, first_seen=now, **values)

    def still_there(self, names: list[str], now: float | None = None) -> None:
        """Services still announced (their records are live): only ``last_seen`` moves."""
        if names:
            with self.write_lock, self.db.atomic("IMMEDIATE"):
                DiscoveredService.update(last_seen=time.time() if now is None else now, present=True).where(
                    DiscoveredService.name.in_(names)
                ).execute()

    def gone(self, name: str) -> None:
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            DiscoveredService.update(present=False).where(DiscoveredService.name == name).execute()

    def all(self) -> list[FoundService]:
        return [_found(row) for row in DiscoveredService.select().order_by(DiscoveredService.last_seen.desc())]
