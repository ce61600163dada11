"""Web passwords on a 1 GB box: Argon2id at OWASP's 19 MiB setting, one hash at a time,
and the hashes of an older Lightbox (argon2-cffi's 64 MiB default) still verify and are made
again with the new parameters at the next login."""

from __future__ import annotations

import threading
from pathlib import Path

from argon2 import PasswordHasher, extract_parameters

from appliance.archive import Archive
from appliance.archive.registry import users
from appliance.archive.registry.models import User

PASSWORD = "correct horse battery"


def test_an_old_hash_verifies_and_is_made_again_at_login(tmp_path: Path) -> None:
    with Archive(tmp_path / "data") as archive:
        archive.users.add("vet", PASSWORD, "admin")
        old = PasswordHasher().hash(PASSWORD)  # what Lightbox stored before: 64 MiB, t=3, p=4
        User.update(password_hash=old).where(User.name == "vet").execute()

        assert archive.users.authenticate("vet", "not the password") is None
        assert archive.users.get("vet").password_hash == old  # a wrong password changes nothing
        account = archive.users.authenticate("vet", PASSWORD)
        assert account is not None and account.password_hash != old
        made = extract_parameters(account.password_hash)
        assert (made.memory_cost, made.time_cost, made.parallelism) == (19 * 1024, 2, 1)
        assert archive.users.authenticate("vet", PASSWORD) is not None  # and it verifies


class Counting:
    """The real hasher, counting how many of its hashes run at once."""

    def __init__(self, real: PasswordHasher) -> None:
        self.real, self.now, self.most = real, 0, 0
        self.lock = threading.Lock()

    def _counted(self, work, *args):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return work(*args)
        finally:
            with self.lock:
                self.now -= 1

    def hash(self, password: str) -> str:
        return self._counted(self.real.hash, password)

    def verify(self, digest: str, password: str) -> bool:
        return self._counted(self.real.verify, digest, password)

    def check_needs_rehash(self, digest: str) -> bool:
        return self.real.check_needs_rehash(digest)


def test_one_password_is_hashed_at_a_time(tmp_path: Path, monkeypatch) -> None:
    counting = Counting(users._HASHER)
    monkeypatch.setattr(users, "_HASHER", counting)
    with Archive(tmp_path / "data") as archive:
        archive.users.add("vet", PASSWORD, "admin")
        work = [
            *(lambda: archive.users.authenticate("vet", PASSWORD) for _ in range(4)),
            *(lambda: archive.users.authenticate("nobody", PASSWORD) for _ in range(4)),
            *(lambda i=i: archive.users.add(f"user{i}", PASSWORD, "viewer") for i in range(4)),
        ]
        threads = [threading.Thread(target=w) for w in work]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(archive.users.all()) == 5
    assert counting.most == 1
