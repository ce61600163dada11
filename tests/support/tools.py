"""The tools the tests drive, by path: missing is a skip on a laptop, a failure in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DCMTK = Path("/usr/bin")


def require(path: str | Path) -> Path:
    """A tool the tests need: missing is a skip on a laptop, a failure in CI."""
    path = Path(path)
    if not path.exists():
        missing(f"{path} is not installed (Debian package: see .ci/run)")
    return path


def missing(message: str) -> None:
    """Something the tests need is not there: a failure in CI, a skip elsewhere."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def dcmtk(tool: str) -> str:
    # Always the Debian path: pynetdicom installs look-alike scripts that shadow DCMTK on PATH.
    return str(require(DCMTK / tool))
