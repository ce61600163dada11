"""Moving one age object to or from the bucket, streamed, with retries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pyrage

from appliance.backup import crypto
from appliance.backup.target import Target, is_missing, with_retries

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig


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


class _Counting:
    def __init__(self, stream: crypto.EncryptingStream) -> None:
        self.stream = stream
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.size += len(data)
        return data


def upload_file(
    client: Any, target: Target, name: str, path: Path, recipient: pyrage.x25519.Recipient, config: "TransferConfig"
) -> Uploaded:
    """Encrypt the file at ``path`` while uploading it as ``name`` (multipart when large)."""

    def attempt() -> Uploaded:
        with open(path, "rb") as source:
            return upload_stream(client, target, name, source, recipient, config)

    return with_retries(attempt, "upload")


def upload_stream(
    client: Any, target: Target, name: str, source: BinaryIO, recipient: pyrage.x25519.Recipient, config: "TransferConfig"
) -> Uploaded:
    stream = crypto.EncryptingStream(source, recipient)
    counted = _Counting(stream)
    try:
        client.upload_fileobj(counted, target.bucket, target.key(name), Config=config)
    finally:
        stream.close()
    return Uploaded(stream.sha256, stream.plain_size, counted.size)


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


def download(client: Any, target: Target, name: str, identity: crypto.Identity, sink_path: Path | None) -> crypto.HashingWriter:
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
