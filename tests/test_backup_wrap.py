"""The backup identity's passphrase wrap (format 2): Argon2id at a bounded memory cost derives
an age X25519 key, which the identity is encrypted to; format 1 (age's scrypt recipient) still
unwraps."""

from __future__ import annotations

import json

import pyrage
import pytest

from appliance.backup import crypto

PASSPHRASE = "correct horse battery staple"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def secret_bytes(key: str) -> bytes:
    """The 32 bytes of an age secret key, decoded from its Bech32 form (checksum dropped)."""
    data = [BECH32.index(c) for c in key.lower().split("1", 1)[1][:-6]]
    bits = "".join(f"{d:05b}" for d in data)
    return int(bits[:256], 2).to_bytes(32, "big")


def test_derived_keys_are_written_as_age_writes_them() -> None:
    for _ in range(5):
        identity = crypto.generate_identity()
        assert crypto.age_secret_key(secret_bytes(str(identity))) == str(identity)


def test_the_wrap_opens_with_the_passphrase_only() -> None:
    identity = crypto.generate_identity()
    wrapped = crypto.wrap_identity(identity, PASSPHRASE)
    magic, params, body = wrapped.split(b"\n", 2)
    assert magic == b"lightbox-identity-wrap/2"
    cost = json.loads(params)
    assert (cost["kdf"], cost["memory_kib"], cost["iterations"], cost["lanes"]) == ("argon2id", 65536, 10, 1)
    assert body.startswith(b"age-encryption.org/v1\n-> X25519 ")  # an age file to the derived key
    assert str(crypto.unwrap_identity(wrapped, PASSPHRASE)) == str(identity)
    assert crypto.wrap_identity(identity, PASSPHRASE) != wrapped  # a new salt each time
    with pytest.raises(crypto.WrongKey, match="wrong passphrase"):
        crypto.unwrap_identity(wrapped, PASSPHRASE + "!")


@pytest.mark.parametrize(
    "change", [{"memory_kib": 64 << 20}, {"iterations": 10**6}, {"lanes": 0}, {"kdf": "pbkdf2"}, {"salt": None}]
)
def test_a_wrap_that_asks_too_much_is_refused_before_any_work(change: dict) -> None:
    magic, params, body = crypto.wrap_identity(crypto.generate_identity(), PASSPHRASE).split(b"\n", 2)
    altered = b"\n".join((magic, json.dumps({**json.loads(params), **change}).encode(), body))
    with pytest.raises(crypto.WrongKey, match="cannot be read"):
        crypto.unwrap_identity(altered, PASSPHRASE)


@pytest.mark.slow  # age's scrypt takes ~1 GB and a second or two
def test_format_1_still_unwraps() -> None:
    identity = crypto.generate_identity()
    legacy = pyrage.passphrase.encrypt(str(identity).encode(), PASSPHRASE)
    assert str(crypto.unwrap_identity(legacy, PASSPHRASE)) == str(identity)
    with pytest.raises(crypto.WrongKey, match="wrong passphrase"):
        crypto.unwrap_identity(legacy, "not the passphrase")
