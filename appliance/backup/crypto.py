"""age encryption (pyrage) as streams, the box's identity, and object names.

pyrage's ``encrypt_io``/``decrypt_io`` read and write Python file objects in 8 KiB / 64 KiB
pieces, so nothing here holds a whole file.  Uploads need a stream to *read* ciphertext
from, while ``encrypt_io`` *pushes* it: a thread runs the encryption into a small bounded
queue that the upload drains.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import queue
import threading
from typing import BinaryIO, Protocol

import pyrage
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


def wrap_identity(identity: Identity, passphrase: str) -> bytes:
    """The identity encrypted with the passphrase (age scrypt recipient)."""
    return pyrage.passphrase.encrypt(str(identity).encode(), passphrase)


def unwrap_identity(wrapped: bytes, passphrase: str) -> Identity:
    try:
        return parse_identity(pyrage.passphrase.decrypt(wrapped, passphrase).decode())
    except pyrage.DecryptError:
        raise WrongKey("wrong passphrase: it does not decrypt the backup's identity") from None


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
