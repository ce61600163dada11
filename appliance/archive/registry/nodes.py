"""The table of known DICOM nodes: C-MOVE destinations, and who may query and retrieve.

Operations a node may be allowed, seen from Lightbox:
  find   it may query Lightbox (C-FIND)
  move   it may ask Lightbox to send instances somewhere (C-MOVE)
  get    it may pull instances itself (C-GET)
  store  Lightbox may send instances to it (as a C-MOVE destination)
  commit it may ask Lightbox for storage commitment (N-ACTION), answered on a new association
         to its host and port when it has released the first
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from peewee import SqliteDatabase

from appliance.archive.registry.models import Node
from appliance.archive.writelock import WriteLock

OPERATIONS = ("find", "move", "get", "store", "commit")


class NodeError(ValueError):
    """A node's values are invalid."""


@dataclass(frozen=True)
class DicomNode:
    aet: str
    host: str
    port: int
    name: str
    allowed: frozenset[str]
    tls: bool = False  # Lightbox connects to it over DICOM TLS
    tls_trust: str = ""  # PEM: its certificate, or the CA that signs it, trusted both ways

    def allows(self, operation: str) -> bool:
        return operation in self.allowed


def may(operation: str, node: DicomNode | None, query_retrieve_from: str) -> bool:
    """Whether a peer (``node``: its entry in the node table, or None) may perform a query or
    retrieve ``operation``, under the ``query_retrieve_from`` setting (known-nodes or any)."""
    if node is not None:
        return node.allows(operation)
    return query_retrieve_from == "any"


def parse_operations(text: str) -> frozenset[str]:
    """``"find,move"`` -> {"find", "move"}; unknown names are an error."""
    names = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = sorted(names - set(OPERATIONS))
    if unknown:
        raise NodeError(f"unknown operation(s) {', '.join(unknown)}; expected some of {','.join(OPERATIONS)}")
    return frozenset(names)


def check_aet(aet: str) -> str:
    """An AE title as PS3.5 allows it: 1-16 characters, no backslash or control characters."""
    aet = aet.strip()
    if not 1 <= len(aet) <= 16 or "\\" in aet or any(ord(c) < 32 or ord(c) > 126 for c in aet):
        raise NodeError(f"invalid AE title {aet!r}: 1-16 printable ASCII characters, no backslash")
    return aet


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise NodeError(f"port {port}: a DICOM port is a number from 1 to 65535 (often 104 or 11112)")
    return port


def check_trust(pem: str, tls: bool) -> str:
    """PEM certificates a TLS peer is checked against: readable, and given when TLS is on."""
    pem = pem.strip()
    if tls and not pem:
        raise NodeError("TLS: give the node's certificate, or its CA's (PEM), to check it by")
    if pem:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=pem)
        except (ssl.SSLError, ValueError) as exc:
            raise NodeError(f"the trusted certificate is not a PEM certificate: {exc}") from None
    return pem + "\n" if pem else ""


def _node(row: Node) -> DicomNode:
    return DicomNode(row.aet, row.host, row.port, row.name, parse_operations(row.allowed), row.tls, row.tls_trust)


class NodeTable:
    def __init__(self, db: SqliteDatabase, write_lock: WriteLock) -> None:
        self.db = db
        self.write_lock = write_lock

    def add(
        self,
        aet: str,
        host: str,
        port: int,
        name: str = "",
        allowed: frozenset[str] = frozenset(OPERATIONS),
        tls: bool | None = None,
        tls_trust: str | None = None,
    ) -> tuple[DicomNode, bool]:
        """Add a node, or update the one with this AE title; return it and whether it is new.
        ``tls`` and ``tls_trust`` left None keep the node's (a new node's: no TLS)."""
        aet = check_aet(aet)
        if not host.strip():
            raise NodeError("host: enter its IP address or host name")
        check_port(port)
        values: dict[str, object] = {
            "host": host.strip(),
            "port": port,
            "name": name,
            "allowed": ",".join(sorted(allowed)),
        }
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            current = self.get(aet)
            tls = tls if tls is not None else bool(current and current.tls)
            tls_trust = tls_trust if tls_trust is not None else (current.tls_trust if current else "")
            values.update(tls=tls, tls_trust=check_trust(tls_trust, tls))
            created = Node.update(values).where(Node.aet == aet).execute() == 0
            if created:
                Node.create(aet=aet, **values)
        return self.get(aet), created  # type: ignore[return-value]

    def remove(self, aet: str) -> bool:
        with self.write_lock, self.db.atomic("IMMEDIATE"):
            return Node.delete().where(Node.aet == aet.strip()).execute() > 0

    def get(self, aet: str) -> DicomNode | None:
        """The node with this AE title (exact, as DICOM compares them; padding ignored)."""
        row = Node.get_or_none(Node.aet == aet.strip())
        return _node(row) if row is not None else None

    def all(self) -> list[DicomNode]:
        return [_node(row) for row in Node.select().order_by(Node.aet)]
