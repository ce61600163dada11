"""The bucket: where it is, the errors its calls raise (``bucket.py`` makes the calls, through
boto3 in a child process), retries.

Layout under the prefix (no UIDs, names or dates of patients anywhere in a name):

    lightbox-backup.json        plaintext marker: format version and the public recipient
    identity.age                the box's identity, encrypted with the passphrase (scrypt)
    objects/<hmac>              one age object per stored instance (the Part 10 file)
    index/<run>.age             the index snapshot a manifest refers to
    manifests/<run>.age         every object with the SHA-256 of its plaintext; the newest
                                manifest is the backup (it is written last in a run)
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from appliance.files import write_private

LOG = logging.getLogger("lightbox.backup")

MARKER = "lightbox-backup.json"
IDENTITY = "identity.age"
OBJECTS = "objects/"
INDEX = "index/"
MANIFESTS = "manifests/"
PART_SIZE = 5 << 20  # multipart above this (S3's smallest part); each part is in memory while sent
ATTEMPTS = 4  # of one object, on transient errors, with backoff 1, 2, 4 s (+ jitter)
T = TypeVar("T")

_PERMANENT = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "AllAccessDisabled",
    "InvalidBucketName",
    "InvalidRequest",
    "NoSuchKey",
    "404",
    "NotFound",
    "MissingUploadObjectWithObjectLockHeaders",
}


class TargetError(Exception):
    """The bucket cannot be used (wrong credentials, no such bucket, unreachable)."""


class BucketError(Exception):
    """The bucket refused a call; ``code`` is S3's (NoSuchKey, AccessDenied, 404, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Unreachable(Exception):
    """No answer from the bucket (network, name lookup, time-out), after botocore's retries."""


class Interrupted(Exception):
    """The work stopped before its end: the S3 process ended, or the service is stopping."""


@dataclass(frozen=True)
class Target:
    bucket: str
    endpoint: str = ""  # empty: AWS S3
    prefix: str = ""
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = ""
    path_style: bool = True  # bucket in the path: S3 clones rarely have a DNS name per bucket

    def key(self, name: str) -> str:
        prefix = self.prefix.strip("/")
        return f"{prefix}/{name}" if prefix else name

    def describe(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"s3://{self.bucket}/{self.prefix.strip('/')}{where}"

    def public(self) -> dict[str, Any]:
        """What a status page may show: no secrets."""
        return {
            "bucket": self.bucket,
            "endpoint": self.endpoint,
            "prefix": self.prefix,
            "region": self.region,
            "path_style": self.path_style,
        }


def save(target: Target, path: Path) -> None:
    write_private(path, json.dumps(asdict(target), indent=2).encode())


def load(path: Path) -> Target:
    return Target(**json.loads(path.read_text()))


def error_code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, BucketError) else ""


def is_missing(exc: BaseException) -> bool:
    return error_code(exc) in ("NoSuchKey", "404", "NotFound")


def explain(exc: BaseException, target: Target) -> str:
    """One line an admin can act on."""
    code = error_code(exc)
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"the bucket refused the credentials ({code}): check the access key and secret"
    if code == "AccessDenied":
        return "access denied by the bucket: the key lacks a permission (see README, backup permissions)"
    if code == "MissingUploadObjectWithObjectLockHeaders":
        return "the bucket has Object Lock retention and wants a checksum on each upload: set backup_checksums = when_supported"
    if code == "NoSuchBucket":
        return f"no bucket {target.bucket!r} at {target.endpoint or 'AWS S3'}"
    if isinstance(exc, Unreachable):
        return f"cannot reach {target.endpoint or 'AWS S3'}: {exc}"
    if isinstance(exc, Interrupted):
        return str(exc)
    return f"{code or type(exc).__name__}: {exc}"


def with_retries(action: Callable[[], T], what: str, attempts: int = ATTEMPTS) -> T:
    """Run ``action``; on a transient error (network, 5xx, throttling) wait and try again,
    on a permanent one (credentials, permissions) raise at once."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except (BucketError, Unreachable) as exc:
            if error_code(exc) in _PERMANENT or attempt == attempts:
                raise
            delay = 2 ** (attempt - 1) * (1 + random.random() / 2)
            LOG.warning(
                "backup_retry what=%s attempt=%d wait=%.1f error=%s", what, attempt, delay, error_code(exc) or exc
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def list_keys(client: Any, target: Target, folder: str) -> Iterator[tuple[str, int]]:
    """(name under the folder, size) of every object in a folder of the backup."""
    prefix = target.key(folder)
    more: dict[str, str] = {}
    while True:
        page = client.list_objects_v2(Bucket=target.bucket, Prefix=prefix, **more)
        for item in page.get("Contents", []):
            yield item["Key"][len(prefix) :], item["Size"]
        if not page.get("IsTruncated"):
            return
        more = {"ContinuationToken": page["NextContinuationToken"]}
