"""Who may query and retrieve: the ``query_retrieve_from`` setting and the node table.

  known-nodes  only AEs in the node table, each for the operations it is allowed (default)
  any          any AE; a known node is still held to its allowed operations

It is applied when an association is negotiated: the Find/Move/Get contexts of a calling AE
that may not use them are not accepted (the peer sees "abstract syntax not supported"), so
every Query/Retrieve handler, C-FIND's included, only ever runs for an allowed peer.
Verification and storage are never restricted here: modalities must always be able to send.
"""

from __future__ import annotations

import logging
from typing import Iterable

from pydicom.uid import UID

from appliance.archive import NodeTable, may

LOG = logging.getLogger("lightbox.dicom")

CHOICES = ("known-nodes", "any")


def operation_of(abstract_syntax: str) -> str | None:
    """"find", "move" or "get" for a Query/Retrieve (or worklist) SOP class; None otherwise."""
    keyword = UID(abstract_syntax).keyword
    for suffix in ("Find", "Move", "Get"):
        if keyword.endswith("InformationModel" + suffix):
            return suffix.lower()
    return None


def allowed_services(
    services: frozenset[str], proposed: Iterable[str], calling_ae: str, nodes: NodeTable, query_retrieve_from: str
) -> frozenset[str]:
    """``services`` without the Query/Retrieve classes, among those ``proposed``, that
    ``calling_ae`` may not use."""
    asked = {uid: op for uid in set(proposed) & services if (op := operation_of(uid))}
    if not asked:
        return services
    node = nodes.get(calling_ae)
    refused = {uid for uid, op in asked.items() if not may(op, node, query_retrieve_from)}
    if refused:
        LOG.info(
            "query_retrieve_refused calling_ae=%r known_node=%s operations=%s policy=%s",
            calling_ae,
            node is not None,
            ",".join(sorted({asked[uid] for uid in refused})),
            query_retrieve_from,
        )
    return services - refused
