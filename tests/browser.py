"""Headless Debian Chromium driven by Playwright (no browser download).

``async with chromium_page() as page:`` gives a fresh page; screenshots go where the
test says (keep them under the test's tmp_path or docs/).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator

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


@contextlib.asynccontextmanager
async def chromium_page(*, width: int = 1280, height: int = 800) -> AsyncIterator[object]:
    """A Playwright page in headless Debian Chromium; skips the test if there is none."""
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed (make deps-browser installs it)")
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="mkutano-chromium-") as profile:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile,
                executable_path=path,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": width, "height": height},
            )
            try:
                page = context.pages[0] if context.pages else await context.new_page()
                yield page
            finally:
                await context.close()
