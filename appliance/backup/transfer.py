"""Moving one age object to or from the bucket, streamed, with retries."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyrage

from appliance.backup import crypto
from appliance.backup.target import PART_SIZE, Target, is_missing, with_retries


class SourceChanged(Exception):
    """The file read for an upload does not have the expected SHA-256; nothing was stored."""


class ObjectProblem(Exception):
    """An object in the bucket is missing, cannot be decrypted, or does not match."""

    def __init__(self, kind: str, name: str, detail: str) -> None:
        super().__init__(f"{kind} {name}: {detail}")
        self.kind = kind  # MISSING | CORRUPT | MISMATCH
        self.name = name
        self.detail = detail


@dataclass(frozen=True)
class Uploaded:
    sha256: str
    size: int
    stored_size: int


class Bandwidth:
    """A shared upload limit: each part waits for its slot at ``bytes_per_second``."""

    def __init__(self, bytes_per_second: int) -> None:
        self.rate = float(bytes_per_second)
        self._lock = threading.Lock()
        self._free_at = time.monotonic()

    def take(self, size: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._free_at = max(self._free_at, now) + size / self.rate
            wait = self._free_at - now - size / self.rate
        if wait > 0:
            time.sleep(wait)


def upload_file(
    client: Any,
    target: Target,
    name: str,
    path: Path,
    recipient: pyrage.x25519.Recipient,
    bandwidth: Bandwidth | None = None,
    expected_sha256: str | None = None,
) -> Uploaded:
    """Encrypt the file at ``path`` while uploading it as ``name`` (multipart when large).
    With ``expected_sha256``, a file that hashes otherwise is not stored (SourceChanged)."""

    def attempt() -> Uploaded:
        with open(path, "rb") as source:
            return upload_stream(client, target, name, source, recipient, bandwidth, expected_sha256)

    return with_retries(attempt, "upload")


def upload_stream(
    client: Any,
    target: Target,
    name: str,
    source: BinaryIO,
    recipient: pyrage.x25519.Recipient,
    bandwidth: Bandwidth | None,
    expected_sha256: str | None,
) -> Uploaded:
    """One PUT, or a multipart upload when the ciphertext fills a part.  Our own loop, not
    s3transfer's: given a stream, s3transfer buffers several parts (~50 MB for a 10 MB file);
    here one part is in memory, and botocore retries a failed part from it."""
    stream = crypto.EncryptingStream(source, recipient)
    key = target.key(name)
    try:
        part = stream.read_part(PART_SIZE)
        if len(part) < PART_SIZE:
            _check_source(stream, expected_sha256)  # the source is read to its end by now
            _pace(bandwidth, len(part))
            client.put_object(Bucket=target.bucket, Key=key, Body=part)
            return Uploaded(stream.sha256, stream.plain_size, len(part))
        upload_id = client.create_multipart_upload(Bucket=target.bucket, Key=key)["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            stored = 0
            while part:
                _pace(bandwidth, len(part))
                number = len(parts) + 1
                sent = client.upload_part(
                    Bucket=target.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
                )
                parts.append({"PartNumber": number, "ETag": sent["ETag"]})
                stored += len(part)
                part = stream.read_part(PART_SIZE)
            _check_source(stream, expected_sha256)
            client.complete_multipart_upload(
                Bucket=target.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            _abort(client, target.bucket, key, upload_id)
            raise
        return Uploaded(stream.sha256, stream.plain_size, stored)
    finally:
        stream.close()


def _check_source(stream: crypto.EncryptingStream, expected_sha256: str | None) -> None:
    if expected_sha256 is not None and stream.sha256 != expected_sha256:
        raise SourceChanged(f"the file's SHA-256 is {stream.sha256}, the index says {expected_sha256}")


def _pace(bandwidth: Bandwidth | None, size: int) -> None:
    if bandwidth is not None:
        bandwidth.take(size)


def _abort(client: Any, bucket: str, key: str, upload_id: str) -> None:
    """Drop the parts sent so far; a key without the right leaves them to the bucket's
    lifecycle rule (see README)."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception:
        pass


class _Source:
    """The response body, keeping any error of its own: pyrage reports a failed read as a
    decryption error, but a dropped connection is worth a retry, not a CORRUPT verdict."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.error: BaseException | None = None

    def read(self, n: int = -1) -> bytes:
        try:
            return self.body.read(n)
        except BaseException as exc:
            self.error = exc
            raise


def _is_corrupt(exc: BaseException) -> bool:
    # A header that no key opens: DecryptError; a payload chunk that fails its tag, or a
    # truncated payload: OSError("decryption error") without an errno (a full disk has one).
    return isinstance(exc, pyrage.DecryptError) or (isinstance(exc, OSError) and exc.errno is None)


def download(
    client: Any, target: Target, name: str, identity: crypto.Identity, sink_path: Path | None
) -> crypto.HashingWriter:
    """Download and decrypt ``name`` into ``sink_path`` (or only hash it)."""

    def attempt() -> crypto.HashingWriter:
        try:
            body = client.get_object(Bucket=target.bucket, Key=target.key(name))["Body"]
        except Exception as exc:
            if is_missing(exc):
                raise ObjectProblem("MISSING", name, "not in the bucket") from None
            raise
        source = _Source(body)
        try:
            if sink_path is None:
                return crypto.decrypt_stream(source, identity)
            with open(sink_path, "wb") as sink:
                plain = crypto.decrypt_stream(source, identity, sink)
                sink.flush()
                return plain
        except (pyrage.DecryptError, OSError) as exc:
            if source.error is not None:
                raise source.error from None
            if not _is_corrupt(exc):
                raise
            raise ObjectProblem(
                "CORRUPT", name, f"cannot be decrypted ({exc}): altered in the bucket, or not made with this key"
            ) from None
        finally:
            body.close()

    return with_retries(attempt, "download")


def check(plain: crypto.HashingWriter, name: str, sha256: str, size: int) -> None:
    if plain.digest.hexdigest() != sha256 or plain.size != size:
        raise ObjectProblem(
            "MISMATCH", name, f"decrypts to {plain.size} bytes with another SHA-256 than the manifest's ({size} bytes)"
        )
