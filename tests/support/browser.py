"""The system Chromium driven by Playwright (no browser is downloaded), and page helpers.

Screenshots go to tests/artifacts/ (git-ignored) for people to look at; those the README shows
also to docs/screenshots/ (committed: a run of the tests brings them up to date).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support.tools import missing, require

# Debian's Chromium; Ubuntu ships it only as a snap.
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/snap/bin/chromium") if Path(p).exists()), "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 15_000


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser), closed on leaving."""
    require(CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # like a missing tool: a failure in CI, a skip on a laptop
        missing("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def another_chromium(browser: Any, *extra_args: str) -> Iterator[Any]:
    """A second Chromium beside ``browser`` (Playwright runs one instance a thread), launched
    with ``extra_args``; closed on leaving."""
    other = browser.browser_type.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
    try:
        yield other
    finally:
        other.close()


def shot(page: Any, name: str, docs: bool = False) -> None:
    """A full-page screenshot; ``docs``: one the README shows."""
    for folder in (ARTIFACTS, DOCS) if docs else (ARTIFACTS,):
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def new_page(browser: Any, server: Any, dialogs: list, **context: Any) -> Any:
    """A page of a new context on ``server`` (``page.base``); dialogs are noted and dismissed."""
    page = browser.new_context(accept_downloads=True, **context).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.base = f"http://127.0.0.1:{server.http_port}"
    return page


def log_in(page: Any, name: str, password: str) -> None:
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("button[type=submit]")


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)
