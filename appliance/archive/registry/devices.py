"""Learned devices: every peer that associates with Lightbox, and the policy that admits them.

Each A-ASSOCIATE-RQ is recorded against its device (calling AE title, source address,
implementation, the SOP classes and transfer syntaxes it proposed, first/last seen); ingest
adds what it received (images, studies) and the last error.  The policy:

  learning  any device is admitted and recorded (the default for a fresh box)
  locked    only approved devices (and nodes added with ``lightbox node add``) are admitted;
            any other is refused and shown as "refused" for an admin to approve

The ``device_policy`` setting is the default; an admin's choice (web UI) is kept in ``Meta``
and read by every association, so it takes effect at once in every DICOM worker process.

A device's status is one of:
  new       seen while learning, never approved
  approved  an admin approved it (with a host and port, it also becomes a node: see nodes.py)
  refused   it tried to associate while locked
  ignored   an admin dismissed it: refused while locked, without asking again

The table is bounded (``max_devices``): a peer inventing AE titles must not grow it, nor the
Devices page polled every few seconds.  Noise -- a device that never stored anything and that no
admin touched (new or refused, no name, no port, no node) -- expires after ``NOISE_EXPIRES_S``
and gives way, least recently seen first, to a newcomer when the table is full; with no noise
left to drop, a newcomer is admitted by the policy but not recorded.

Quirks, per device: ``charset_override`` (the Specific Character Set its files really use,
applied when indexing), ``lenient_aet`` (recognised by its address when it calls with another
AE title: units that send a blank, default or changing title), ``accept_private_sop_classes``
(recorded for negotiation; today every peer's private storage classes are accepted).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from peewee import DatabaseError, SqliteDatabase
from pydicom.charset import python_encoding

from appliance.archive.index import database
from appliance.archive.registry.models import Device, DiscoveredService, ForwardRule, Node
from appliance.archive.registry.nodes import (
    OPERATIONS,
    DicomNode,
    NodeError,
    NodeTable,
    check_aet,
    check_port,
    parse_operations,
)
from appliance.archive.sqlite import bookkeeping, put_meta
from appliance.archive.writelock import WriteLock

LOG = logging.getLogger("lightbox.devices")

POLICIES = ("learning", "locked")
STATUSES = ("new", "approved", "refused", "ignored")
MAX_SYNTAXES = 256  # per device, so a peer proposing junk cannot grow a row without bound
ERROR_LENGTH = 300
POLICY_KEY = "device_policy"
MAX_DEVICES = 200  # a clinic has a handful; a busy imaging centre a few dozen
NOISE_EXPIRES_S = 30 * 86400


class DeviceError(ValueError):
    """No such device, or invalid values for one."""


class NoPort(DeviceError):
    """The device's own DICOM port is not known: Lightbox cannot call it."""


@dataclass(frozen=True)
class AssociationSeen:
    """What an A-ASSOCIATE-RQ says about the device that sent it."""

    calling_ae: str
    address: str
    implementation_class_uid: str = ""
    implementation_version: str = ""
    sop_classes: tuple[str, ...] = ()
    transfer_syntaxes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LearnedDevice:
    aet: str
    name: str
    status: str
    host: str
    port: int | None
    allowed: frozenset[str]
    implementation_class_uid: str
    implementation_version: str
    sop_classes: tuple[str, ...]
    transfer_syntaxes: tuple[str, ...]
    first_seen: float
    last_seen: float
    associations: int
    refused: int
    studies_received: int
    images_received: int
    last_error: str
    last_error_at: float | None
    charset_override: str
    accept_private_sop_classes: bool
    lenient_aet: bool


def _device(row: Device) -> LearnedDevice:
    return LearnedDevice(
        aet=row.aet,
        name=row.name,
        status=row.status,
        host=row.host,
        port=row.port,
        allowed=parse_operations(row.allowed),
        implementation_class_uid=row.implementation_class_uid,
        implementation_version=row.implementation_version,
        sop_classes=tuple(json.loads(row.sop_classes)),
        transfer_syntaxes=tuple(json.loads(row.transfer_syntaxes)),
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        associations=row.associations,
        refused=row.refused,
        studies_received=row.studies_received,
        images_received=row.images_received,
        last_error=row.last_error,
        last_error_at=row.last_error_at,
        charset_override=row.charset_override,
        accept_private_sop_classes=row.accept_private_sop_classes,
        lenient_aet=row.lenient_aet,
    )


def admits(policy: str, status: str, known_node: bool) -> bool:
    """Whether the device policy lets a device with this status associate at all."""
    return policy == "learning" or known_node or status == "approved"


def _merged(stored: str, new: Iterable[str]) -> str:
    values = json.loads(stored)
    known = set(values)
    for value in new:
        if value and value not in known and len(values) < MAX_SYNTAXES:
            values.append(value)
            known.add(value)
    return json.dumps(values)


# The device an association or a received file belongs to: its own AE title, else a device
# with the lenient-AE quirk at that address.  Plain SQL: ingest runs it once per instance.
_DEVICE_OF = (
    "SELECT id FROM device WHERE aet = ? OR (lenient_aet = 1 AND host = ? AND host != '') ORDER BY aet = ? DESC LIMIT 1"
)


def _noise() -> Any:
    """Devices worth nothing to keep: never stored, never touched by an admin, not a node."""
    nodes = Node.select(Node.aet)
    return (
        Device.status.in_(("new", "refused"))
        & (Device.images_received == 0)
        & (Device.name == "")
        & Device.port.is_null()
        & (Device.charset_override == "")
        & ~Device.lenient_aet
        & Device.aet.not_in(nodes)
    )


def _device_id(calling_ae: str, address: str) -> int | None:
    row = database.execute_sql(_DEVICE_OF, (calling_ae, address, calling_ae)).fetchone()
    return row[0] if row else None


def charset_override(calling_ae: str, address: str) -> str | None:
    """The character set override of the device that sent a file, if it has one."""
    row = database.execute_sql(
        f"SELECT charset_override FROM device WHERE id = ({_DEVICE_OF})", (calling_ae, address, calling_ae)
    ).fetchone()
    return row[0] if row and row[0] else None


def count_received(calling_ae: str, address: str, images: int, studies: int) -> None:
    """Images (and new studies) stored from this device; runs in the caller's transaction."""
    device_id = _device_id(calling_ae, address)
    if device_id is not None:
        database.execute_sql(
            "UPDATE device SET images_received = images_received + ?, studies_received = studies_received + ?"
            " WHERE id = ?",
            (images, studies, device_id),
        )


def record_error(calling_ae: str, address: str, error: str) -> None:
    """The device's last error; runs in the caller's transaction."""
    device_id = _device_id(calling_ae, address)
    if device_id is not None:
        Device.update(last_error=error[:ERROR_LENGTH], last_error_at=time.time()).where(
            Device.id == device_id
        ).execute()


def _announced(aet: str) -> DiscoveredService | None:
    """The service announced on the LAN (DNS-SD) under this AE title, if one is there now."""
    return (
        DiscoveredService.select()
        .where((DiscoveredService.aet == aet) & (DiscoveredService.present == True))  # noqa: E712
        .order_by(DiscoveredService.last_seen.desc())
        .first()
    )


def _address(host: str | None, port: int | None) -> dict[str, object]:
    """The host and port values to set, checked; None leaves one as it is."""
    values: dict[str, object] = {}
    if host is not None:
        values["host"] = host.strip()
    if port is not None:
        values["port"] = check_port(port)
    return values


def _not_forwarded_to(aet: str, why: str = "") -> None:
    """Refuse a change that would leave forwarding rules sending to a node that is not there."""
    rules = [str(r.id) for r in ForwardRule.select(ForwardRule.id).where(ForwardRule.destination == aet)]
    if rules:
        many = len(rules) > 1
        raise NodeError(
            f"Forwarding rule{'s' if many else ''} {', '.join(rules)} send{'' if many else 's'} studies to {aet}{why}:"
            f" remove {'them' if many else 'it'} first."
        )


def check_charset(value: str) -> str:
    value = value.strip()
    if value and value not in python_encoding:
        raise DeviceError(f"unknown character set {value!r}: use a DICOM defined term such as ISO_IR 100, ISO_IR 192")
    return value


class DeviceTable:
    def __init__(
        self,
        db: SqliteDatabase,
        write_lock: WriteLock,
        nodes: NodeTable,
        policy: str = "learning",
        max_devices: int = MAX_DEVICES,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"device policy {policy!r}: expected one of {', '.join(POLICIES)}")
        self.db = db
        self.write_lock = write_lock
        self.nodes = nodes
        self.default_policy = policy
        self.max_devices = max_devices

    @property
    def policy(self) -> str:
        """The policy in force: the one an admin chose (in ``Meta``), else the setting (also
        when the index cannot be read: the door must still answer)."""
        try:
            row = database.execute_sql("SELECT value FROM meta WHERE key = ?", (POLICY_KEY,)).fetchone()
        except DatabaseError:
            return self.default_policy
        return row[0] if row and row[0] in POLICIES else self.default_policy

    def set_policy(self, policy: str) -> str:
        """Keep an admin's choice of policy; new associations follow it at once."""
        if policy not in POLICIES:
            raise DeviceError(f"device policy {policy!r}: expected one of {', '.join(POLICIES)}")
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            put_meta(POLICY_KEY, policy)
        LOG.info("device_policy_changed policy=%s", policy)
        return policy

    def admit(self, seen: AssociationSeen, now: float | None = None) -> bool:
        """Record an association request; True when the policy admits it."""
        now = time.time() if now is None else now
        known_node = self.nodes.get(seen.calling_ae) is not None if seen.calling_ae else False
        with self.write_lock, bookkeeping(self.db), self.db.atomic("IMMEDIATE"):
            device_id = _device_id(seen.calling_ae, seen.address)
            row = Device.get_by_id(device_id) if device_id is not None else None
            if row is None:
                if not self._room_for_one_more(now):
                    return admits(self.policy, "new", known_node)
                row = Device(aet=seen.calling_ae, first_seen=now, host=seen.address)
            # Read inside the association's own write transaction: one primary-key lookup,
            # no cache that another process's change would have to wait out.
            admitted = admits(self.policy, row.status, known_node)
            if not admitted and row.status != "ignored":
                row.status = "refused"
            if not row.lenient_aet:  # a lenient device is known by its address: keep it
                row.host = seen.address
            row.last_seen = now
            row.implementation_class_uid = seen.implementation_class_uid
            row.implementation_version = seen.implementation_version
            row.sop_classes = _merged(row.sop_classes, seen.sop_classes)
            row.transfer_syntaxes = _merged(row.transfer_syntaxes, seen.transfer_syntaxes)
            row.associations += int(admitted)
            row.refused += int(not admitted)
            row.save()
        return admitted

    def _room_for_one_more(self, now: float) -> bool:
        """Expire old noise, then make room for a newcomer by dropping the least recently seen
        noise; False when the table is full of devices worth keeping."""
        noise = _noise()
        Device.delete().where(noise & (Device.last_seen < now - NOISE_EXPIRES_S)).execute()
        if Device.select().count() < self.max_devices:
            return True
        oldest = Device.select(Device.id).where(noise).order_by(Device.last_seen).limit(1).scalar()
        if oldest is None:
            LOG.warning("device_table_full devices=%d: a new device is not recorded", self.max_devices)
            return False
        Device.delete_by_id(oldest)
        return True

    def record_error(self, calling_ae: str, address: str, error: str) -> None:
        """The last error of an association (protocol error, dropped connection); never raises:
        the association's own outcome matters more than this record of it."""
        try:
            with self.write_lock, self.db.atomic("IMMEDIATE"):
                record_error(calling_ae, address, error)
        except Exception as exc:
            LOG.warning("device_error_not_recorded calling_ae=%r reason=%r", calling_ae, str(exc))

    def charset_override(self, calling_ae: str, address: str) -> str | None:
        return charset_override(calling_ae, address)

    def count_received(self, calling_ae: str, address: str, images: int, studies: int) -> None:
        """What an association stored, recorded with its device; never raises (statistics)."""
        try:
            with self.write_lock, self.db.atomic("IMMEDIATE"):
                count_received(calling_ae, address, images, studies)
        except Exception as exc:
            LOG.warning("device_counts_not_recorded calling_ae=%r reason=%r", calling_ae, str(exc))

    def get(self, aet: str) -> LearnedDevice | None:
        row = Device.get_or_none(Device.aet == aet.strip())
        return _device(row) if row is not None else None

    def all(self, include_ignored: bool = True) -> list[LearnedDevice]:
        query = Device.select().order_by(Device.last_seen.desc())
        if not include_ignored:
            query = query.where(Device.status != "ignored")
        return [_device(row) for row in query]

    def approve(
        self, aet: str, host: str | None = None, port: int | None = None
    ) -> tuple[LearnedDevice, DicomNode | None]:
        """Approve a device, with its host and own DICOM port if given; with a port known (given,
        set before, or announced on the LAN under its AE title), it becomes (or updates) its node.
        Without one it may send images, but Lightbox cannot send to it or test it."""
        device = self._set(aet, status="approved", **_address(host, port))
        if device.port is None and (announced := _announced(device.aet)) is not None:
            self._set(aet, host=announced.host, port=announced.port)
        return self._sync_node(aet)

    def ignore(self, aet: str) -> LearnedDevice:
        return self._set(aet, status="ignored")

    def rename(self, aet: str, name: str) -> LearnedDevice:
        return self._set(aet, name=name.strip())

    def edit(
        self,
        aet: str,
        *,
        new_aet: str | None = None,
        host: str | None = None,
        port: int | None = None,
        allowed: frozenset[str] | None = None,
        charset_override: str | None = None,
        accept_private_sop_classes: bool | None = None,
        lenient_aet: bool | None = None,
    ) -> tuple[LearnedDevice, DicomNode | None]:
        """Change what an admin may change; an approved device's node follows."""
        values: dict[str, object] = _address(host, port)
        if new_aet is not None:
            values["aet"] = check_aet(new_aet)
        if allowed is not None:
            values["allowed"] = ",".join(sorted(allowed))
        if charset_override is not None:
            values["charset_override"] = check_charset(charset_override)
        if accept_private_sop_classes is not None:
            values["accept_private_sop_classes"] = accept_private_sop_classes
        if lenient_aet is not None:
            values["lenient_aet"] = lenient_aet
        device = self._set(aet, **values)
        if device.aet != aet.strip() and device.status == "approved":
            self.nodes.remove(aet)  # its node follows it to the new AE title
        return self._sync_node(device.aet)

    def reachable(self, aet: str) -> DicomNode:
        """The device as a peer to call (C-ECHO): it needs a host and its own port."""
        device = self.get(aet)
        if device is None:
            raise DeviceError(f"no device {aet!r}")
        if not device.host or device.port is None:
            raise NoPort(
                f"Lightbox does not know which port {device.aet} listens on. Enter its DICOM port"
                " (in the device's network or DICOM settings), then test it again."
            )
        return DicomNode(device.aet, device.host, device.port, device.name, device.allowed)

    def save_node(
        self,
        aet: str,
        host: str,
        port: int,
        name: str = "",
        allowed: frozenset[str] = frozenset(OPERATIONS),
        *,
        new: bool = False,
        tls: bool | None = None,
        tls_trust: str | None = None,
    ) -> tuple[DicomNode, bool]:
        """Add a node (``new``: not if one has this AE title) or change it; return it and
        whether it is new.  A learned device with its AE title takes the same host, port,
        allowed operations (and name, if one is given): a device and its node never disagree.
        ``tls``, ``tls_trust``: see ``NodeTable.add``."""
        aet = check_aet(aet)
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            if new and self.nodes.get(aet) is not None:
                raise NodeError(f"there is already a node {aet}: change that one instead")
            if "store" not in allowed:
                _not_forwarded_to(aet, ", so it must stay allowed to receive them (store)")
            node, created = self.nodes.add(aet, host, port, name, allowed, tls, tls_trust)
            mirrored: dict[str, object] = {"host": node.host, "port": node.port, "allowed": ",".join(sorted(allowed))}
            if name.strip():
                mirrored["name"] = name.strip()
            Device.update(mirrored).where(Device.aet == aet).execute()
        return node, created

    def remove_node(self, aet: str) -> bool:
        """Remove a node.  Its learned device, if any, forgets its port too: approved or not,
        it may still send images when the policy admits it, but Lightbox no longer sends to it."""
        aet = aet.strip()
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            _not_forwarded_to(aet)
            Device.update(port=None).where(Device.aet == aet).execute()
            return self.nodes.remove(aet)

    def _set(self, aet: str, /, **values: object) -> LearnedDevice:
        aet = aet.strip()
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            if Device.get_or_none(Device.aet == aet) is None:
                raise DeviceError(f"no device {aet!r}")
            new_aet = values.get("aet")
            if new_aet not in (None, aet) and Device.get_or_none(Device.aet == new_aet) is not None:
                raise DeviceError(f"another device is called {new_aet!r}")
            if values:
                Device.update(values).where(Device.aet == aet).execute()
        return self.get(str(values.get("aet", aet)))  # type: ignore[return-value]

    def _sync_node(self, aet: str) -> tuple[LearnedDevice, DicomNode | None]:
        """An approved device with a host and port is also a node (C-MOVE destination,
        query/retrieve policy), with the device's AE title, name and allowed operations."""
        device = self.get(aet)
        assert device is not None
        if device.status != "approved" or not device.host or device.port is None:
            return device, self.nodes.get(device.aet)
        try:
            node, _ = self.nodes.add(device.aet, device.host, device.port, device.name, device.allowed)
        except NodeError as exc:
            raise DeviceError(str(exc)) from exc
        return device, node
