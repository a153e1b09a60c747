"""The participants' self-service pages (``/my``): over plain HTTP without JavaScript, and
in Debian's Chromium with axe-core, on a 390 px phone."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.axe import axe_violations
from tests.browser import chromium_page
from tests.helpers import create_event, participant

pytestmark = pytest.mark.e2e


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def _register(base: str, headers: dict[str, str], **overrides: object) -> dict:
    event = await create_event(base, headers, capacity=1)
    async with httpx.AsyncClient(base_url=base, timeout=10) as api:
        r = await api.post(
            f"/api/v1/events/{event['id']}/registrations", json=participant(**overrides)
        )
    assert r.status_code == 201, r.text
    return {**r.json(), "event_id": event["id"]}


async def _sign_in(client: httpx.AsyncClient, reference: str, token: str) -> str:
    start = await client.get("/my?lang=en")
    opened = await client.post(
        "/my?lang=en",
        data={"reference": reference, "token": token, "csrf": _csrf(start.text)},
    )
    assert opened.status_code == 303, opened.text
    assert opened.headers["cache-control"] == "no-store"
    location = opened.headers["location"]
    assert re.fullmatch(r"/my/[A-Za-z0-9_-]{48}\?lang=en", location), location
    return location.split("?")[0]


async def test_self_service_pages_work_without_javascript(platform) -> None:
    base = platform.registration.url
    mine = await _register(base, platform.admin_headers, language="sw")
    other = await _register(base, platform.admin_headers)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        start = await client.get("/my")
        assert start.status_code == 200 and '<html lang="sw">' in start.text
        assert start.headers["cache-control"] == "no-store"
        assert "samesite=strict" in start.headers["set-cookie"].lower()
        assert "http://" not in start.text and "https://" not in start.text

        # The start form: blank fields say required; a wrong token opens nothing.
        csrf = _csrf(start.text)
        blank = await client.post("/my?lang=en", data={"csrf": csrf})
        assert blank.status_code == 422 and 'id="error-summary"' in blank.text
        assert 'id="reference-error">This field is required.<' in blank.text
        wrong = await client.post(
            "/my?lang=en", data={"reference": mine["reference"], "token": "x", "csrf": csrf}
        )
        assert wrong.status_code == 404 and "No registration matches" in wrong.text
        # A post without the form token (another site's form) is refused.
        forged = await client.post(
            "/my?lang=en",
            data={"reference": mine["reference"], "token": mine["manage_token"]},
        )
        assert forged.status_code == 403 and "location" not in forged.headers
        odd = await client.post(
            "/my?lang=en", data={"reference": "MK-1", "token": "x", "csrf": "ñ"}
        )
        assert odd.status_code == 403

        page_url = await _sign_in(client, mine["reference"], mine["manage_token"])
        page = await client.get(page_url, params={"lang": "en"})
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert f'id="reference">{mine["reference"]}<' in page.text
        assert other["reference"] not in page.text
        assert 'id="ticket">MK2' in page.text  # confirmed: the ticket (Ed25519) is shown
        token = _csrf(page.text)

        # Change details: without the page's form token, refused; with it, saved (PRG).
        details = {
            "phone": "0754 000 111",
            "position": "Head of ICT Unit",
            "accessibility_needs": ["braille"],
            "language": "en",
        }
        refused = await client.post(f"{page_url}/details?lang=en", data=details)
        assert refused.status_code == 403 and refused.headers["cache-control"] == "no-store"
        odd = await client.post(f"{page_url}/details?lang=en", data={**details, "csrf": "ñ"})
        assert odd.status_code == 403
        bad = await client.post(
            f"{page_url}/details?lang=en", data={**details, "phone": "", "csrf": token}
        )
        assert bad.status_code == 422 and 'id="phone-error">This field is required.<' in bad.text
        saved = await client.post(f"{page_url}/details?lang=en", data={**details, "csrf": token})
        assert saved.status_code == 303
        assert saved.headers["location"] == f"{page_url}?lang=en&done=updated"
        after = await client.get(saved.headers["location"])
        assert "Your changes are saved." in after.text and 'value="+255754000111"' in after.text
        own = await client.get(
            f"/api/v1/registrations/{mine['reference']}",
            headers={"X-Manage-Token": mine["manage_token"]},
        )
        assert own.json()["phone"] == "+255754000111"
        assert own.json()["accessibility_needs"] == ["braille"]
        assert own.json()["language"] == "en"

        data = await client.get(f"{page_url}/data")
        assert data.status_code == 200 and data.headers["cache-control"] == "no-store"
        assert "attachment" in data.headers["content-disposition"]
        assert json.loads(data.text)["reference"] == mine["reference"]

        # Cancel: only when confirmed by ticking the box.
        unticked = await client.post(f"{page_url}/cancel?lang=en", data={"csrf": token})
        assert unticked.status_code == 422 and 'id="confirm_cancel-error"' in unticked.text
        cancelled = await client.post(
            f"{page_url}/cancel?lang=en", data={"csrf": token, "confirm": "yes"}
        )
        assert cancelled.status_code == 303
        shown = await client.get(cancelled.headers["location"])
        assert 'id="status">Cancelled<' in shown.text and "/details" not in shown.text

        # Erase: then the link opens nothing, the same answer as a tampered or unknown one.
        erased = await client.post(
            f"{page_url}/erase?lang=en", data={"csrf": token, "confirm": "yes"}
        )
        assert erased.status_code == 303 and erased.headers["location"] == "/my?lang=en&done=erased"
        assert (
            "Your personal data has been erased."
            in (await client.get("/my?lang=en&done=erased")).text
        )
        link = page_url.removeprefix("/my/")
        tampered = link[:-1] + ("A" if link[-1] != "A" else "B")
        answers = [
            await client.get(f"/my/{value}?lang=en")
            for value in (link, tampered, "x" * 48, "unknown")
        ]
        assert {(a.status_code, a.text) for a in answers} == {
            (answers[0].status_code, answers[0].text)
        }
        assert answers[0].status_code == 404 and "opens no registration" in answers[0].text
        assert all(a.headers["cache-control"] == "no-store" for a in answers)
        late = await client.post(
            f"{page_url}/cancel?lang=en", data={"csrf": token, "confirm": "yes"}
        )
        assert late.status_code == 404


async def test_self_service_pages_pass_axe_on_a_phone(platform, tmp_path) -> None:
    base = platform.registration.url
    mine = await _register(base, platform.admin_headers)
    async with chromium_page(width=390, height=844) as page:
        for lang, button in (("sw", "Fungua usajili wangu"), ("en", "Open my registration")):
            await page.goto(f"{base}/my?lang={lang}")
            assert await axe_violations(page) == [], f"start ({lang})"
            await page.get_by_role("button", name=button).click()
            await page.wait_for_load_state()
            assert await page.evaluate("document.activeElement.id") == "error-summary"
            assert await axe_violations(page) == [], f"start errors ({lang})"
        await page.fill("#reference", mine["reference"])
        await page.fill("#token", mine["manage_token"])
        await page.get_by_role("button", name="Open my registration").click()
        await page.get_by_role("heading", name="Your registration", exact=True).wait_for()
        assert await axe_violations(page) == [], "registration"
        await page.fill("#phone", "")
        await page.get_by_role("button", name="Save changes").click()
        await page.wait_for_load_state()
        assert await page.evaluate("document.activeElement.id") == "error-summary"
        assert await axe_violations(page) == [], "registration with errors"
        await page.fill("#phone", "0754 000 333")
        await page.get_by_role("button", name="Save changes").click()
        await page.get_by_role("status").wait_for()
        assert "Your changes are saved." in await page.get_by_role("status").inner_text()
        assert await axe_violations(page) == [], "after saving"
        await page.get_by_role("link", name="Kiswahili").click()
        await page.get_by_role("heading", name="Usajili wako", exact=True).wait_for()
        assert await axe_violations(page) == [], "registration (sw)"
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        await page.screenshot(path=str(tmp_path / "my-390.png"), full_page=True)
        assert (tmp_path / "my-390.png").stat().st_size > 0
