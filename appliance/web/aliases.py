"""A de-identified share link's own UIDs for its study, series and instances.

The link's pages and JSON name everything by the new UID its de-identified files carry (the
``Plan``'s, the same as in its ZIP), and its requests are mapped back to the archive's UIDs:
the archive's own UIDs never reach the colleague, and asking by them is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.archive import Archive
from appliance.deidentify import Plan

UID = re.compile(r"[0-9]+(?:\.[0-9]+)+")


@dataclass(frozen=True)
class Aliases:
    new: dict[str, str]  # the archive's UID -> the link's
    old: dict[str, str]  # the link's UID -> the archive's

    @classmethod
    def of(cls, archive: Archive, study_uid: str, plan: Plan) -> Aliases:
        found = archive.study_detail(study_uid)
        originals = [study_uid]
        for series in found.series if found is not None else []:
            originals += [series.series_uid, *(i.sop_uid for i in series.instances)]
        new = {uid: plan.uid(uid) for uid in originals}
        return cls(new, {alias: uid for uid, alias in new.items()})

    def text(self, text: str) -> str:
        """``text`` with each of the study's UIDs replaced by its alias (one pass)."""
        return UID.sub(lambda found: self.new.get(found.group(), found.group()), text)
