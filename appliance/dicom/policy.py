"""Who may query and retrieve, or ask for storage commitment: the ``query_retrieve_from``
setting and the node table.

  known-nodes  only AEs in the node table, each for the operations it is allowed (default)
  any          any AE; a known node is still held to its allowed operations

It is applied when an association is negotiated: the contexts of a service whose operation
(its row's ``operation`` in ``services.py``: find, move, get, commit) the calling AE may not use are
not accepted (the peer sees "abstract syntax not supported"), so every Query/Retrieve service,
C-FIND's included, only ever runs for an allowed peer.  Verification and storage need no
operation: modalities must always be able to send.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from appliance.archive import NodeTable, may

LOG = logging.getLogger("lightbox.dicom")


def refused_operations(
    asked: Iterable[str], calling_ae: str, nodes: NodeTable, query_retrieve_from: str
) -> frozenset[str]:
    """Of the operations ``asked`` for, those ``calling_ae`` may not use."""
    asked = set(asked)
    if not asked:
        return frozenset()
    node = nodes.get(calling_ae)
    refused = frozenset(op for op in asked if not may(op, node, query_retrieve_from))
    if refused:
        LOG.info(
            "query_retrieve_refused calling_ae=%r known_node=%s operations=%s policy=%s",
            calling_ae, node is not None, ",".join(sorted(refused)), query_retrieve_from,
        )  # fmt: skip
    return refused
