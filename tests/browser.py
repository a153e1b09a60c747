"""Headless Debian Chromium driven by Playwright (no browser download).

``async with chromium_page() as page:`` gives a fresh page; screenshots go where the
test says (keep them under the test's tmp_path or docs/). ``async with
chromium_context() as context:`` gives a fresh browser context with one page open.

One Chromium runs for the whole session (launched by the first test that needs it, closed
by the ``_shared_chromium`` session fixture in tests/conftest.py); each test gets a new
context of its own: no cookies, storage, cache or service workers carry over between
tests, as with a browser of its own, without a browser start (a second or more) per test.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


# The session's Playwright driver and its one Chromium, set by the first test needing them.
_SHARED: dict[str, Any] = {}


async def shared_playwright() -> Any:
    """The session's Playwright driver (started on first use); skips without Chromium."""
    if chromium_path() is None:
        pytest.skip("Debian's chromium is not installed (make deps-browser installs it)")
    if "playwright" not in _SHARED:
        from playwright.async_api import async_playwright

        _SHARED["playwright"] = await async_playwright().start()
    return _SHARED["playwright"]


async def shared_browser() -> Any:
    """The session's Chromium, launched on first use (and again if it went away)."""
    pw = await shared_playwright()
    browser = _SHARED.get("browser")
    if browser is None or not browser.is_connected():
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        _SHARED["browser"] = browser
    return browser


async def close_shared_browser() -> None:
    """Close the session's Chromium and Playwright driver, if they were started."""
    browser = _SHARED.pop("browser", None)
    if browser is not None:
        with contextlib.suppress(Exception):  # already gone (crashed or closed)
            await browser.close()
    pw = _SHARED.pop("playwright", None)
    if pw is not None:
        await pw.stop()


@contextlib.asynccontextmanager
async def chromium_context(*, width: int = 1280, height: int = 800) -> AsyncIterator[Any]:
    """A new context (with one page open) in the session's Chromium; closed afterwards."""
    browser = await shared_browser()
    context = await browser.new_context(viewport={"width": width, "height": height})
    try:
        await context.new_page()
        yield context
    finally:
        await context.close()


@contextlib.asynccontextmanager
async def chromium_page(*, width: int = 1280, height: int = 800) -> AsyncIterator[Any]:
    """A Playwright page in headless Debian Chromium; skips the test if there is none."""
    async with chromium_context(width=width, height=height) as context:
        yield context.pages[0]
