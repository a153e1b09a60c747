"""Every service's API documentation at /docs, opened in Debian's Chromium under the same
Content-Security-Policy as every other page: it renders its operations, the browser
refuses nothing, and axe-core finds nothing wanting, on a desktop and a phone viewport
(shared/static/docs.css and docs.js; see shared.http.install_docs)."""

from __future__ import annotations

import httpx
import pytest

from tests.axe import axe_violations
from tests.browser import chromium_page

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("service", ["registration", "notification", "resolutions"])
async def test_the_api_docs_render_under_the_content_security_policy(platform, service) -> None:
    base = getattr(platform, service).url
    async with httpx.AsyncClient(base_url=base) as client:
        page_answer = await client.get("/docs")
    policy = page_answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1]

    refused: list[str] = []
    async with chromium_page() as page:
        page.on(
            "console",
            lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.on("pageerror", lambda error: refused.append(str(error)))
        await page.goto(f"{base}/docs")
        await page.locator(".opblock").first.wait_for(timeout=15_000)
        assert await page.locator(".opblock").count() >= 3
        assert "Mkutano" in await page.title()
        assert await axe_violations(page) == []
        # An operation still opens, and "Try it out" still sends its request.
        live = page.locator("#operations-health-live_health_live_get")
        await live.locator(".opblock-summary-control").click()
        await live.get_by_role("button", name="Try it out").click()
        await live.get_by_role("button", name="Execute").click()
        status = live.locator(".live-responses-table .response .response-col_status")
        await status.wait_for(timeout=10_000)
        assert (await status.inner_text()).strip() == "200"
    assert refused == []


@pytest.mark.parametrize("service", ["registration", "notification", "resolutions"])
async def test_the_api_docs_pass_axe_on_a_phone(platform, service) -> None:
    async with chromium_page(width=390, height=844) as page:
        await page.goto(f"{getattr(platform, service).url}/docs")
        await page.locator(".opblock").first.wait_for(timeout=15_000)
        assert await axe_violations(page) == []


async def test_the_api_docs_pass_axe_with_an_operation_open_and_the_authorize_dialog(
    platform,
) -> None:
    """What a reader opens: an operation with its parameters and responses, and the
    Authorize dialog for an API key or a token."""
    async with chromium_page() as page:
        await page.goto(f"{platform.registration.url}/docs")
        await page.locator(".opblock").first.wait_for(timeout=15_000)
        operation = page.locator(".opblock-tag-section .opblock").nth(1)
        await operation.locator(".opblock-summary-control").click()
        await operation.locator(".opblock-body").wait_for(timeout=10_000)
        assert await axe_violations(page) == []
        await page.locator("button.authorize").first.click()
        await page.locator(".modal-ux").wait_for(timeout=10_000)
        assert await page.get_by_role("dialog", name="Available authorizations").is_visible()
        assert await axe_violations(page) == []
        await page.get_by_role("button", name="Close").first.click()
        await page.locator(".modal-ux").wait_for(state="detached", timeout=10_000)
