"""axe-core (npm, pinned in package-lock.json) run on a page in Debian's Chromium.

``await axe_violations(page)`` injects axe through the DevTools protocol, so a page's own
Content-Security-Policy (``script-src 'self'``) stays as it is, and returns axe's
violations of WCAG 2.x A/AA and best practice, each with the nodes at fault.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@functools.cache
def _axe_source() -> str:
    """axe.min.js, read once a session (half a megabyte, injected into every page checked)."""
    return AXE.read_text()


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now (an empty list is a pass)."""
    if not AXE.exists():
        if os.environ.get("CI"):
            pytest.fail("axe-core is missing: make deps-node installs it")
        pytest.skip("axe-core is not installed (make deps-node)")
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(_axe_source())
    result = await page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
        TAGS,
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:10],
        }
        for v in result["violations"]
    ]
