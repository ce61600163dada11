"""Fixtures and hooks only; the helpers they use are in tests/support/.

Servers: `lightbox` is a fresh `lightbox serve` for one test (`lightbox_factory` makes more);
`server` is one shared by a module's tests, for tests that leave alone what the others assert
on (a module overrides `server_settings` to start it with other settings).  Web tests log in
with `admin` and `viewer`; browser tests drive `browser`.  A module that talks to peers which
cannot bind to 127.0.0.1 only runs in a private network: `pytestmark = usefixtures("netns")`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support import rpi_image
from support.browser import chromium
from support.lightbox import LightboxProcess, running
from support.netns import private_network
from support.tools import DCMTK, IN_CI
from support.web import VIEWER, VIEWER_PASSWORD, Client, add_user, first_admin

if TYPE_CHECKING:
    from support.s3servers import MotoS3


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The Raspberry Pi image's tests go last, and its build starts now, in the background:
    ~10 minutes of emulated dpkg overlap the rest of the suite instead of adding to it."""
    image_tests = [item for item in items if item.path.name == "test_image.py"]
    if image_tests:
        items[:] = [item for item in items if item.path.name != "test_image.py"] + image_tests
        if not config.option.collectonly and not rpi_image.cannot_build():
            rpi_image.BackgroundBuild(Path(__file__).parent / "artifacts" / "image-build.log")


def pytest_sessionfinish() -> None:
    if rpi_image.BackgroundBuild.started is not None:
        rpi_image.BackgroundBuild.started.stop()


@pytest.fixture
def lightbox_factory(tmp_path: Path) -> Iterator[Callable[..., LightboxProcess]]:
    """``make(name="data", start=True, **settings)``: servers of this test's own, stopped after it."""
    started: list[LightboxProcess] = []

    def make(name: str = "data", start: bool = True, **settings: object) -> LightboxProcess:
        server = LightboxProcess(tmp_path / name, **settings)
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        if server.proc is not None:
            server.stop()


@pytest.fixture
def lightbox(lightbox_factory: Callable[..., LightboxProcess]) -> LightboxProcess:
    """A fresh `lightbox serve` with an empty archive, for this test alone."""
    return lightbox_factory()


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    """Settings of the module's shared `server`; a test module overrides this fixture."""
    return {}


@pytest.fixture(scope="module")
def server(server_settings: dict[str, object], request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightboxProcess]:  # fmt: skip
    """One `lightbox serve` shared by the module's tests (it starts in about a second)."""
    folder = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    with running(folder / "data", **server_settings) as lightbox:
        yield lightbox


@pytest.fixture(scope="module")
def admin(server: LightboxProcess) -> Client:
    """The first admin of the module's `server`, logged in (setup done)."""
    return first_admin(server)


@pytest.fixture(scope="module")
def viewer(admin: Client) -> Client:
    """A viewer account made by `admin`, logged in."""
    return add_user(admin, VIEWER, VIEWER_PASSWORD)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for the module's pages."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def netns() -> Iterator[None]:
    """The module's tests, and every process they start, in a private network namespace."""
    with private_network():
        yield


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    """moto's S3 server on 127.0.0.1 for the module (any credentials)."""
    from support.s3servers import MotoS3  # boto3 and moto: only where a test needs them

    s3 = MotoS3().start()
    yield s3
    s3.stop()


@pytest.fixture(scope="session", autouse=True)
def _no_stray_dcmtk_on_path() -> None:
    """Document the trap once: `storescu` on PATH may be pynetdicom's, not DCMTK's."""
    found = shutil.which("storescu")
    if found and Path(found).resolve() != (DCMTK / "storescu").resolve():
        print(f"note: {found} shadows DCMTK's storescu; tests call {DCMTK / 'storescu'}")


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """An 8 MB tmpfs to hold a data folder, for a full disk (the tests run as root)."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if result.returncode != 0:
        message = f"cannot mount a tmpfs: {result.stderr.strip()}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)])
