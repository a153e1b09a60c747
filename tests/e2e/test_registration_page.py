"""The registration page, filled in by a person in a real headless browser (Debian's
Chromium), and the same page without JavaScript over plain HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient

from tests.axe import axe_violations
from tests.browser import chromium_page
from tests.helpers import create_event

pytestmark = pytest.mark.e2e


async def test_a_participant_registers_in_the_browser(platform, tmp_path: Path) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers, capacity=5)
    async with chromium_page() as page:
        await page.goto(f"{platform.registration.url}/register/{event['id']}")
        assert await page.get_attribute("html", "lang") == "sw"
        await page.get_by_role("link", name="English").click()
        assert await page.get_attribute("html", "lang") == "en"

        # First an incomplete form: the errors are announced and tied to their fields.
        await page.get_by_label("Full name").fill("Rehema Joseph Mushi")
        await page.get_by_label("Email").fill("not-an-email")
        await page.get_by_role("button", name="Register").click()
        summary = page.get_by_role("alert")
        assert "Please correct the following" in await summary.inner_text()
        email = page.get_by_label("Email")
        assert await email.get_attribute("aria-invalid") == "true"
        described = await email.get_attribute("aria-describedby")
        assert "valid email" in await page.locator(f"#{described}").inner_text()
        assert await page.get_by_label("Full name").input_value() == "Rehema Joseph Mushi"

        await email.fill("Rehema.Mushi@example.go.tz")
        await page.get_by_label("Phone number").fill("0765 432 109")
        await page.get_by_label("Institution").fill("Wizara ya Fedha")
        await page.get_by_label("Position").fill("Head of ICT Unit")
        await page.get_by_label("Participant category").select_option("director_or_head_of_ict")
        await page.get_by_label("Region").fill("Dodoma")
        await page.get_by_label("Wheelchair access").check()
        await page.get_by_label("English").check()
        await page.get_by_label(re.compile("I agree to the processing")).check()
        await page.get_by_role("button", name="Register").click()

        await page.get_by_role("heading", name="You are registered").wait_for()
        reference = (await page.locator("#reference").inner_text()).strip()
        assert re.fullmatch(r"MK-[A-Z0-9]{5}-[A-Z0-9]{5}", reference)
        assert (await page.locator("#status").inner_text()).strip() == "Confirmed"
        await page.screenshot(path=str(tmp_path / "registered.png"), full_page=True)
        assert (tmp_path / "registered.png").stat().st_size > 0

    client: AsyncMongoClient = AsyncMongoClient(platform.mongo.url)
    try:
        db = client[platform.registration.env["REGISTRATION_MONGO_DB"]]
        stored = await db.registrations.find_one({"reference": reference})
    finally:
        await client.close()
    assert stored["email"] == "rehema.mushi@example.go.tz"
    assert stored["phone"] == "+255765432109"
    assert stored["accessibility_needs"] == ["wheelchair_access"]
    assert stored["language"] == "en" and stored["consent"]["accepted"] is True


async def test_the_page_works_without_javascript(platform) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers, capacity=5)
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        page = await client.get(f"/register/{event['id']}")
        assert page.status_code == 200 and '<html lang="sw">' in page.text
        assert 'for="full_name"' in page.text and "Jisajili" in page.text
        assert "http://" not in page.text and "https://" not in page.text  # nothing external
        form = {
            "full_name": "Baraka Mwakyusa",
            "email": "baraka@example.go.tz",
            "phone": "255 713 111 222",
            "institution": "TAMISEMI",
            "position": "Afisa TEHAMA",
            "category": "ict_officer",
            "language": "sw",
        }
        refused = await client.post(f"/register/{event['id']}", data=form)
        assert refused.status_code == 422
        assert 'id="consent-error"' in refused.text and 'role="alert"' in refused.text
        done = await client.post(f"/register/{event['id']}", data={**form, "consent": "yes"})
        assert done.status_code == 201
        assert re.search(r'id="reference">MK-[A-Z0-9]{5}-[A-Z0-9]{5}<', done.text)
        twice = await client.post(f"/register/{event['id']}", data={**form, "consent": "yes"})
        assert twice.status_code == 409 and "imeshasajiliwa" in twice.text
        missing = await client.get("/register/no-such-event?lang=en")
        assert missing.status_code == 404 and "There is no such event" in missing.text


REQUIRED = ("full_name", "email", "phone", "institution", "position", "category")


async def test_an_empty_required_field_says_required_in_both_languages(platform) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers)
    says = {"en": "This field is required.", "sw": "Sehemu hii inahitajika."}
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        for lang, required in says.items():
            blank = {name: "" for name in REQUIRED}
            page = await client.post(f"/register/{event['id']}?lang={lang}", data=blank)
            assert page.status_code == 422
            for name in REQUIRED:
                assert f'id="{name}-error">{required}<' in page.text, name
            spaces = await client.post(
                f"/register/{event['id']}?lang={lang}", data={**blank, "full_name": "   "}
            )
            assert f'id="full_name-error">{required}<' in spaces.text


async def test_the_page_has_no_axe_violation_and_errors_take_focus(platform) -> None:
    """axe-core finds nothing on the form, the form with errors, the confirmation and a
    closed event's page, in both languages; after errors, focus is on the summary."""
    event = await create_event(platform.registration.url, platform.admin_headers)
    closed = await create_event(
        platform.registration.url,
        platform.admin_headers,
        registration_opens_at=None,
        state="closed",
    )
    base = platform.registration.url
    async with chromium_page(width=390, height=844) as page:
        for lang, button, done in (
            ("en", "Register", "You are registered"),
            ("sw", "Jisajili", "Umesajiliwa"),
        ):
            await page.goto(f"{base}/register/{event['id']}?lang={lang}")
            assert await axe_violations(page) == [], f"form ({lang})"
            await page.get_by_role("button", name=button).click()
            await page.wait_for_load_state()
            assert await page.evaluate("document.activeElement.id") == "error-summary"
            assert await axe_violations(page) == [], f"errors ({lang})"
            # The summary's first link takes focus to its field.
            await page.locator("#error-summary a").first.click()
            assert await page.evaluate("document.activeElement.id") == "full_name"
            await page.fill("#full_name", "Neema Mushi")
            await page.fill("#email", f"neema.{lang}.{event['id']}@example.go.tz")
            await page.fill("#phone", "0754 000 111" if lang == "en" else "0754 000 222")
            await page.fill("#institution", "e-GA")
            await page.fill("#position", "ICT Officer")
            await page.select_option("#category", "ict_officer")
            await page.check("#consent")
            await page.get_by_role("button", name=button).click()
            await page.get_by_role("heading", name=done).wait_for()
            assert await axe_violations(page) == [], f"registered ({lang})"
            await page.goto(f"{base}/register/{closed['id']}?lang={lang}")
            assert await axe_violations(page) == [], f"closed ({lang})"
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, width
