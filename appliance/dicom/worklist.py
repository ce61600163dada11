"""The Modality Worklist service (Modality Worklist Information Model - FIND, PS3.4 K): a
C-FIND answered from the archive's scheduled orders (``archive.worklist``) by the same
loop as the Query/Retrieve C-FIND (``find.answer``): Specific Character Set, pending
responses, C-CANCEL and the cap on matches alike.

Each answer holds exactly the keys asked for (universal matching returns the values; a key
the worklist does not keep is returned empty), with one Scheduled Procedure Step item.
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from appliance.archive import STEP_KINDS
from appliance.dicom import find
from appliance.dicom.context import Final, Request, ServiceContext
from appliance.dicom.encoding import FindResponseEncoder

MODEL = "1.2.840.10008.5.1.4.31"  # Modality Worklist Information Model - FIND
_LABEL = "WORKLIST"  # in logs and the audit trail


def serve(context: ServiceContext, request: Request[Dataset]) -> Final:
    return find.answer(
        context, request, _LABEL, lambda: find.Query(request.dataset, STEP_KINDS),
        lambda query: context.archive.worklist.find(query.keys),
        lambda query, match: _encoder(query, match, request.explicit_vr),
    )  # fmt: skip


def _encoder(query: find.Query, match: dict[str, Any], explicit: bool) -> FindResponseEncoder:
    asked = [(int(tag), vr) for tag, vr in query.asked]
    keywords = {keyword for tag, _vr in query.asked if (keyword := keyword_for_tag(tag))}
    return FindResponseEncoder([], asked, [kw for kw in match if kw in keywords], query.item_keys, explicit)
