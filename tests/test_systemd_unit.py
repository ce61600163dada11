"""The service unit's sandbox, as systemd rates it: `systemd-analyze security` must find an
exposure of 1.5 or less (its threshold 15, in tenths).  `systemd-analyze verify` runs on the
installed units in test_systemd_service.py, where the unit's program exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from support.tools import require

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "lightbox.service"
MOST_EXPOSURE = 1.5


def test_unit_exposure_is_1_5_or_less():
    analyze = require("/usr/bin/systemd-analyze")
    result = subprocess.run(
        [str(analyze), "security", "--offline=true", "--threshold=15", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for lightbox\.service: (\d+\.\d)", result.stdout)
    assert found, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert float(found.group(1)) <= MOST_EXPOSURE
    print(f"exposure {found.group(1)}")
