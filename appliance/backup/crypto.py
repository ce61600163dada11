"""age encryption (pyrage) as streams, the box's identity (and its passphrase wrap), and object names.

pyrage's ``encrypt_io``/``decrypt_io`` read and write Python file objects in 8 KiB / 64 KiB
pieces, so nothing here holds a whole file.  Uploads need a stream to *read* ciphertext
from, while ``encrypt_io`` *pushes* it: a thread runs the encryption into a small bounded
queue that the upload drains.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import queue
import secrets
import threading
from dataclasses import asdict, dataclass
from typing import BinaryIO, Protocol

import pyrage
from argon2.low_level import Type, hash_secret_raw
from pyrage.x25519 import Identity

QUEUE_PIECES = 4  # x 64 KiB of ciphertext waiting for the upload: 256 KiB at most
_NAMES_LABEL = b"lightbox backup object names v1"


class WrongKey(Exception):
    """The passphrase or recovery key does not open this backup."""


def generate_identity() -> Identity:
    return Identity.generate()


def parse_identity(text: str) -> Identity:
    try:
        return Identity.from_str(text.strip())
    except pyrage.IdentityError as exc:
        raise WrongKey(f"not an age recovery key (AGE-SECRET-KEY-1...): {exc}") from None


@dataclass(frozen=True)
class WrapCost:
    """Argon2id's cost for the passphrase wrap, written beside the wrap so a restore uses it.

    64 MiB fits the 1 GB box (the web server runs `backup init` within its 200 MB); ten passes
    over it (~0.5 s here, a few seconds on a Pi) make each guess of an attacker who copied the
    bucket cost 640 MiB of memory traffic.  age's own passphrase recipient (scrypt, tuned by
    rage to ~1 s of CPU) took ~1 GB for a moment, which pyrage offers no way to cap."""

    memory_kib: int = 64 * 1024
    iterations: int = 10
    lanes: int = 1


WRAP_COST = WrapCost()
MAX_WRAP_MEMORY_KIB = 256 * 1024  # a bucket cannot make a restore take more (the 256 MB command budget)
_WRAP_MAGIC = b"lightbox-identity-wrap/2\n"
_LEGACY_MAGIC = b"age-encryption.org/"  # format 1: age's scrypt passphrase recipient
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def wrap_identity(identity: Identity, passphrase: str, cost: WrapCost = WRAP_COST) -> bytes:
    """The identity encrypted with the passphrase (format 2): a header line, the Argon2id
    parameters and salt as a JSON line, then an age file encrypted to the X25519 key that
    Argon2id derives from the passphrase."""
    params = {"kdf": "argon2id", **asdict(cost), "salt": base64.b64encode(secrets.token_bytes(16)).decode()}
    recipient = _passphrase_identity(passphrase, params).to_public()
    return _WRAP_MAGIC + json.dumps(params).encode() + b"\n" + pyrage.encrypt(str(identity).encode(), [recipient])


def unwrap_identity(wrapped: bytes, passphrase: str) -> Identity:
    """The identity from ``wrap_identity``'s output, or from format 1 (age's scrypt recipient,
    Lightbox before the 1 GB budget; it takes the memory its scrypt factor asks)."""
    if wrapped.startswith(_LEGACY_MAGIC):
        try:
            return parse_identity(pyrage.passphrase.decrypt(wrapped, passphrase).decode())
        except pyrage.DecryptError:
            raise WrongKey("wrong passphrase: it does not decrypt the backup's identity") from None
    if not wrapped.startswith(_WRAP_MAGIC):
        raise WrongKey("the backup's identity.age is not a Lightbox identity wrap")
    header, _, body = wrapped[len(_WRAP_MAGIC) :].partition(b"\n")
    try:
        key = _passphrase_identity(passphrase, json.loads(header))
    except (ValueError, KeyError, TypeError) as exc:
        raise WrongKey(f"the backup's identity wrap cannot be read: {exc}") from None
    try:
        return parse_identity(pyrage.decrypt(body, [key]).decode())
    except pyrage.DecryptError:
        raise WrongKey("wrong passphrase: it does not decrypt the backup's identity") from None


def _passphrase_identity(passphrase: str, params: dict) -> Identity:
    """The age X25519 identity whose secret is Argon2id(passphrase, salt) under ``params``."""
    if params["kdf"] != "argon2id" or not (
        8 <= params["memory_kib"] <= MAX_WRAP_MEMORY_KIB
        and 1 <= params["iterations"] <= 100
        and 1 <= params["lanes"] <= 16
    ):
        raise ValueError(f"unsupported key derivation {params}")
    secret = hash_secret_raw(
        passphrase.encode(), base64.b64decode(params["salt"]), params["iterations"], params["memory_kib"],
        params["lanes"], 32, Type.ID,
    )  # fmt: skip
    return Identity.from_str(age_secret_key(secret))


def age_secret_key(secret: bytes) -> str:
    """32 bytes as age writes an X25519 secret key: Bech32 (BIP 173), ``AGE-SECRET-KEY-1...``."""
    hrp, acc, bits, data = "age-secret-key-", 0, 0, []
    for byte in secret:  # 8-bit groups to 5-bit groups
        acc, bits = (acc << 8) | byte, bits + 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    check = _bech32_polymod([ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + data + [0] * 6) ^ 1
    data += [(check >> 5 * (5 - i)) & 31 for i in range(6)]
    return (hrp + "1" + "".join(_BECH32[d] for d in data)).upper()


def _bech32_polymod(values: list[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, g in enumerate(generator):
            check ^= g if (top >> i) & 1 else 0
    return check


def names_key(identity: Identity) -> bytes:
    """Key for object names, derived from the identity so a restore can compute them too."""
    return hmac.new(str(identity).encode(), _NAMES_LABEL, hashlib.sha256).digest()


def object_name(key: bytes, sop_uid: str, sha256: str) -> str:
    """An instance's object name: an HMAC of its SOP Instance UID and content hash, so the
    bucket shows no UIDs, and a replaced instance's new bytes never overwrite the old object."""
    return hmac.new(key, f"{sop_uid}\n{sha256}".encode(), hashlib.sha256).hexdigest()


class HashingReader:
    """Reads through to ``source``, hashing and counting what passes."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


class HashingWriter:
    """Writes through to ``sink`` (or nowhere), hashing and counting what passes."""

    def __init__(self, sink: BinaryIO | None = None) -> None:
        self.sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()


class _Aborted(Exception):
    pass


class EncryptingStream:
    """The age encryption of ``source`` to ``recipient``, read part by part.

    After the last part was read, ``sha256`` and ``plain_size`` describe the plaintext.
    ``close()`` stops the encryption thread if the reader gave up early.
    """

    def __init__(self, source: BinaryIO, recipient: pyrage.x25519.Recipient) -> None:
        self._plain = HashingReader(source)
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(QUEUE_PIECES)
        self._aborted = threading.Event()
        self._rest = b""  # read from the queue, not yet returned
        self._done = False
        self._thread = threading.Thread(target=self._encrypt, args=(recipient,), name="age-encrypt", daemon=True)
        self._thread.start()

    def _encrypt(self, recipient: pyrage.x25519.Recipient) -> None:
        try:
            pyrage.encrypt_io(self._plain, self, [recipient])
            self._put(None)
        except _Aborted:
            pass
        except BaseException as exc:  # handed to the reader, which raises it
            with contextlib.suppress(_Aborted):
                self._put(exc)

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self._aborted.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Aborted()

    def write(self, data: bytes) -> int:  # called by encrypt_io, in the thread
        self._put(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def read_part(self, size: int) -> bytearray:
        """The next ``size`` bytes of ciphertext (fewer at the end), gathered in one buffer
        that grows as pieces arrive (a small file's part stays small) and each 64 KiB piece
        freed at once."""
        part = bytearray()
        while len(part) < size:
            item = self._rest
            self._rest = b""
            if not item:
                if self._done:
                    break
                got = self._queue.get()
                if got is None:
                    self._done = True
                    break
                if isinstance(got, BaseException):
                    self._done = True
                    raise got
                item = got
            room = size - len(part)
            part += item[:room]
            self._rest = item[room:]
        return part

    @property
    def sha256(self) -> str:
        return self._plain.digest.hexdigest()

    @property
    def plain_size(self) -> int:
        return self._plain.size

    def close(self) -> None:
        self._aborted.set()
        self._thread.join()


class Readable(Protocol):
    def read(self, n: int = -1) -> bytes: ...


def decrypt_stream(source: Readable, identity: Identity, sink: BinaryIO | None = None) -> HashingWriter:
    """Decrypt ``source`` into ``sink`` (or only hash it).  A header no key opens raises
    pyrage.DecryptError; an altered or truncated payload, OSError("decryption error")."""
    plain = HashingWriter(sink)
    pyrage.decrypt_io(source, plain, [identity])
    return plain
