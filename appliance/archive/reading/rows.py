"""The row type shared by everyone who needs an instance's stored file: a C-MOVE/C-GET or a
forward (class and syntax to negotiate), a backup (hash, size, reception time)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.archive.index import Instance


@dataclass(frozen=True)
class InstanceFile:
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    file_key: str  # where it is in the storage area
    size: int
    sha256: str
    received_at: float


# The columns an ``InstanceFile`` is made of, in order: ``InstanceFile(*row)``.
FILE_COLUMNS = (
    Instance.sop_uid, Instance.sop_class_uid, Instance.transfer_syntax, Instance.file_key, Instance.size,
    Instance.sha256, Instance.received_at,
)  # fmt: skip
