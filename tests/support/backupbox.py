"""One Lightbox data folder and the `lightbox` backup commands run on it, as a clinic would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from bench.procstat import CommandRun, run_sampled
from support.s3servers import ACCESS_KEY, SECRET_KEY

PASSPHRASE = "correct horse battery staple"


class Box:
    """One Lightbox data folder and the commands run on it."""

    def __init__(
        self, data: Path, endpoint: str, bucket: str, prefix: str = "lightbox",
        keys: tuple[str, str] = (ACCESS_KEY, SECRET_KEY),
    ) -> None:  # fmt: skip
        self.keys = keys
        self.data = data
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix
        self.passphrase_file = data.parent / f"{data.name}-passphrase"
        self.passphrase_file.write_text(PASSPHRASE + "\n")

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "AWS_ACCESS_KEY_ID": self.keys[0], "AWS_SECRET_ACCESS_KEY": self.keys[1], **extra}

    def run(
        self, *args: str | Path, data: bool = True, timeout: float = 300, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        extra = ["--data", str(self.data)] if data else []
        return subprocess.run(
            [sys.executable, "-m", "appliance", *map(str, args), *extra],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(**(env or {})),
        )

    def measured(self, *args: str | Path, data: bool = True) -> CommandRun:
        """A command run with its memory sampled (``peak_hwm``: its peak RSS)."""
        extra = ["--data", str(self.data)] if data else []
        cmd = [sys.executable, "-m", "appliance", *map(str, args), *extra]
        return run_sampled(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env())

    def ok(self, *args: str | Path, **kwargs) -> subprocess.CompletedProcess:
        proc = self.run(*args, **kwargs)
        assert proc.returncode == 0, f"lightbox {' '.join(map(str, args))}: {proc.stdout}\n{proc.stderr}"
        return proc

    def init(self, *extra: str) -> subprocess.CompletedProcess:
        return self.ok(
            "backup", "init", "--bucket", self.bucket, "--endpoint", self.endpoint, "--prefix", self.prefix,
            "--passphrase-file", self.passphrase_file, *extra,
        )  # fmt: skip

    def backup(self, *extra: str) -> dict[str, int]:
        out = self.ok("backup", "run", *extra).stdout
        return numbers(out, ("uploaded", "found uploaded", "deletions recorded", "purged"))

    def restore(self, to: Path, *key: str) -> subprocess.CompletedProcess:
        return self.run(
            "restore", "--from-bucket", self.bucket, "--endpoint", self.endpoint, "--prefix", self.prefix,
            "--to", to, *(key or ("--passphrase-file", self.passphrase_file)), data=False,
        )  # fmt: skip

    def status(self) -> dict:
        return json.loads(self.ok("backup", "status", "--json").stdout)


def numbers(text: str, labels: tuple[str, ...]) -> dict[str, int]:
    found = {}
    for label in labels:
        match = re.search(rf"{label}: (\d+)", text)
        assert match, f"no {label!r} in {text!r}"
        found[label] = int(match[1])
    return found
