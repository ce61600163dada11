"""The site: the clinic's name, its time zone and Lightbox's AE title, as the first-run wizard
and the admin page set them, the web's HTTPS policy, and which wizard steps are done or skipped.

Kept in ``Meta`` and read where they are used, so a change holds at once in every process: a
DICOM worker takes the AE title at each new association, the backup loop the time zone at
each look at the schedule.  Unset values fall back to the settings (``aet``) or the system's
zone.  The chosen zone is also written to ``<data>/timezone`` (one line; removed when unset):
Lightbox runs unprivileged and never sets the system clock's zone itself, but an appliance may
apply that file with a root unit of its own (README, "Time zone").
"""

from __future__ import annotations

import json
import logging
import os
import time
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

from peewee import DatabaseError, SqliteDatabase

from appliance.archive.index import Meta
from appliance.archive.registry.nodes import check_aet
from appliance.archive.sqlite import put_meta
from appliance.archive.writelock import WriteLock

LOG = logging.getLogger("lightbox.site")

MAX_CLINIC_NAME = 80
# The HTTPS policy is asked on every web request (a read costs ~0.5 ms): read again after this
# many seconds; a change made through this process holds at once.
HTTPS_READ_EVERY = 5.0
STEP_STATES = ("done", "skipped")
_PREFIX = "site:"


class SiteError(ValueError):
    """A clinic name, time zone, AE title or wizard step that cannot be kept."""


@dataclass(frozen=True)
class Site:
    clinic_name: str
    time_zone: str  # an IANA name such as Europe/Berlin; "" for the system's
    aet: str  # "" for the `aet` setting


@dataclass(frozen=True)
class HttpsPolicy:
    only: bool = False  # plain HTTP is sent to HTTPS (but /healthz)
    trusted: bool = False  # an admin says browsers trust the certificate: HSTS


def time_zones() -> list[str]:
    """The IANA zone names this system knows (its tzdata), sorted: the Area/Place ones and UTC
    (not "localtime", "Factory", "posixrules" or the old country names such as "Poland")."""
    return sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC")


def check_time_zone(name: str) -> str:
    name = name.strip()
    if name and name not in time_zones():
        raise SiteError(f"unknown time zone {name!r}: a name such as Europe/Berlin or America/New_York")
    return name


class SiteProfile:
    def __init__(self, db: SqliteDatabase, write_lock: WriteLock, zone_file: Path) -> None:
        self.db = db
        self.write_lock = write_lock
        self.zone_file = zone_file
        self._https: tuple[float, HttpsPolicy] | None = None  # (when read, what)

    def _get(self, key: str) -> str:
        row = Meta.get_or_none(Meta.key == _PREFIX + key)
        return row.value if row is not None else ""

    def _put(self, key: str, value: str) -> None:
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            put_meta(_PREFIX + key, value)

    def get(self) -> Site:
        return Site(self._get("clinic_name"), self._get("time_zone"), self._get("aet"))

    def ae_title(self, default: str) -> str:
        """The AE title in force: the one an admin chose, else ``default`` (the setting; also
        when the index cannot be read: the door must still answer)."""
        try:
            return self._get("aet") or default
        except DatabaseError:
            return default

    def zone(self) -> zoneinfo.ZoneInfo | None:
        """The clinic's time zone; None for the system's."""
        name = self._get("time_zone")
        try:
            return zoneinfo.ZoneInfo(name) if name else None
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # tzdata changed under us
            return None

    def set_clinic_name(self, name: str) -> str:
        name = " ".join(name.split())
        if len(name) > MAX_CLINIC_NAME or any(ord(c) < 32 for c in name):
            raise SiteError(f"clinic name: at most {MAX_CLINIC_NAME} characters")
        self._put("clinic_name", name)
        return name

    def set_aet(self, aet: str) -> str:
        """Lightbox's AE title from the next association on ("" goes back to the setting)."""
        aet = aet.strip()
        if aet:
            try:
                aet = check_aet(aet)
            except ValueError as exc:
                raise SiteError(str(exc)) from None
        self._put("aet", aet)
        LOG.info("site_aet_changed aet=%r", aet)
        return aet

    def set_time_zone(self, name: str) -> str:
        name = check_time_zone(name)
        self._put("time_zone", name)
        self._write_zone_file(name)
        LOG.info("site_time_zone_changed zone=%r", name)
        return name

    def _write_zone_file(self, name: str) -> None:
        if not name:
            self.zone_file.unlink(missing_ok=True)
            return
        partial = self.zone_file.with_name(self.zone_file.name + ".tmp")
        with open(partial, "w", encoding="ascii") as out:
            out.write(name + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.zone_file)

    def https(self) -> HttpsPolicy:
        """The web's HTTPS policy; the default (neither) when the index cannot be read, so that
        a page that tells what is wrong can still be served."""
        now, cached = time.monotonic(), self._https
        if cached is not None and now - cached[0] < HTTPS_READ_EVERY:
            return cached[1]
        try:
            kept = json.loads(self._get("https") or "{}")
        except (DatabaseError, ValueError):
            return HttpsPolicy()
        policy = HttpsPolicy(bool(kept.get("only")), bool(kept.get("trusted")))
        self._https = (now, policy)
        return policy

    def set_https(self, policy: HttpsPolicy) -> None:
        self._put("https", json.dumps({"only": policy.only, "trusted": policy.trusted}))
        self._https = (time.monotonic(), policy)
        LOG.info("site_https_changed only=%s trusted=%s", policy.only, policy.trusted)

    def wizard_steps(self) -> dict[str, str]:
        """Each wizard step an admin finished ("done") or passed over ("skipped")."""
        return json.loads(self._get("wizard") or "{}")

    def mark_step(self, step: str, state: str) -> None:
        if state not in STEP_STATES:
            raise SiteError(f"wizard step state: one of {', '.join(STEP_STATES)}")
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            row = Meta.get_or_none(Meta.key == _PREFIX + "wizard")
            steps = json.loads(row.value) if row is not None else {}
            put_meta(_PREFIX + "wizard", json.dumps({**steps, step: state}))
