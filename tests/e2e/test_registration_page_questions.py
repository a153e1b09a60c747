"""The registration page with an event's categories and custom questions: filled in by a
person in Debian's Chromium at 390 px (axe-clean before and after errors), and posted
without JavaScript over plain HTTP."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.axe import axe_violations
from tests.browser import chromium_page
from tests.helpers import create_event

pytestmark = pytest.mark.e2e


def _choice(code: str, sw: str, en: str, **extra: object) -> dict[str, object]:
    return {"code": code, "label_sw": sw, "label_en": en, **extra}


CATEGORIES = [
    {
        "code": "ict_officer",
        "name_sw": "Kada ya TEHAMA",
        "name_en": "ICT cadre",
        "fee_tzs": 400_000,
    },
    {"code": "student", "name_sw": "Mwanafunzi", "name_en": "Student", "fee_tzs": 20_000},
    {
        "code": "officer",
        "name_sw": "Afisa mteule",
        "name_en": "Nominated officer",
        "requires_nomination": True,
    },
]
QUESTIONS = [
    {
        "id": "field_visit",
        "type": "single_choice",
        "label_sw": "Ziara ya mafunzo",
        "label_en": "Field visit",
        "help_sw": "Nafasi ni chache.",
        "help_en": "Places are limited.",
        "required": True,
        "choices": [
            _choice("ngorongoro", "Ngorongoro", "Ngorongoro", limit=60),
            _choice("none", "Sitashiriki", "I will not join"),
        ],
    },
    {
        "id": "sessions",
        "type": "multiple_choice",
        "label_sw": "Vikao",
        "label_en": "Sessions",
        "choices": [_choice("ai", "Akili bandia", "AI"), _choice("cyber", "Usalama", "Security")],
    },
    {"id": "vegetarian", "type": "yes_no", "label_sw": "Mboga tu?", "label_en": "Vegetarian?"},
    {
        "id": "years",
        "type": "number",
        "label_sw": "Miaka kazini",
        "label_en": "Years in service",
        "max_value": 60,
    },
    {"id": "arrival", "type": "date", "label_sw": "Siku ya kufika", "label_en": "Arrival date"},
    {"id": "topic", "type": "long_text", "label_sw": "Mada", "label_en": "A topic you propose"},
    {
        "id": "university",
        "type": "short_text",
        "label_sw": "Chuo",
        "label_en": "University",
        "required": True,
        "categories": ["student"],
    },
]


async def test_a_participant_answers_the_events_questions_in_the_browser(platform) -> None:
    event = await create_event(
        platform.registration.url,
        platform.admin_headers,
        categories=CATEGORIES,
        questions=QUESTIONS,
    )
    base = platform.registration.url
    async with chromium_page(width=390, height=844) as page:
        await page.goto(f"{base}/register/{event['id']}?lang=en")
        assert await axe_violations(page) == [], "form"
        category = page.get_by_label("Participant category")
        options = await category.locator("option").all_inner_texts()
        assert "ICT cadre (fee TSh 400,000)" in options
        assert not any("Nominated officer" in o for o in options)  # nominated, not self
        assert "Nominated officer" in await page.locator("#category-hint").inner_text()
        assert "Only for: Student" in await page.locator("#answers\\.university-hint").inner_text()
        assert "60 places left" in await page.locator("fieldset#answers\\.field_visit").inner_text()

        await page.fill("#full_name", "Zawadi Mollel")
        await page.fill("#email", f"zawadi.{event['id']}@example.go.tz")
        await page.fill("#phone", "0754 123 456")
        await page.fill("#institution", "e-GA")
        await page.fill("#position", "ICT Officer")
        await category.select_option("ict_officer")
        await page.get_by_label("Security").check()
        await page.get_by_label("AI", exact=True).check()
        await page.locator("#answers\\.vegetarian-yes").check()
        await page.fill("#answers\\.years", "75")
        await page.fill("#answers\\.arrival", "2027-05-10")
        await page.fill("#answers\\.topic", "Shared services\nfor local government")
        await page.check("#consent")
        await page.get_by_role("button", name="Register").click()
        await page.wait_for_load_state()

        # The required field visit and the too-large number are named in the summary.
        assert await page.evaluate("document.activeElement.id") == "error-summary"
        summary = await page.locator("#error-summary").inner_text()
        assert "Field visit: Required." in summary
        assert "Years in service: Must be at most 60." in summary
        assert await axe_violations(page) == [], "errors"
        assert await page.get_by_label("Security").is_checked()  # kept
        await page.locator("#error-summary a").first.click()
        assert await page.evaluate("document.activeElement.id") == "answers.field_visit-ngorongoro"
        await page.get_by_label(re.compile("^Ngorongoro")).check()
        await page.fill("#answers\\.years", "12")
        await page.get_by_role("button", name="Register").click()
        await page.get_by_role("heading", name="You are registered").wait_for()
        assert await axe_violations(page) == [], "registered"
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        # The participant's own page shows their category and answers.
        reference = (await page.locator("#reference").inner_text()).strip()
        token = (await page.locator("#manage-token").inner_text()).strip()
        await page.goto(f"{base}/my?lang=en")
        await page.fill("#reference", reference)
        await page.fill("#token", token)
        await page.get_by_role("button", name="Open my registration").click()
        # The first list is the registration (a second one, for a paid category, the bill).
        details = await page.locator("dl.result").first.inner_text()
        assert "ICT cadre" in details and "Field visit" in details
        assert "Ngorongoro" in details and "AI, Security" in details
        assert await axe_violations(page) == [], "own page"

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        listed = (
            await client.get(
                f"/api/v1/events/{event['id']}/registrations", headers=platform.admin_headers
            )
        ).json()["items"]
        assert listed[0]["category"] == "ict_officer"
        assert listed[0]["answers"] == {
            "field_visit": "ngorongoro",
            "sessions": ["ai", "cyber"],
            "vegetarian": True,
            "years": 12,
            "arrival": "2027-05-10",
            "topic": "Shared services\nfor local government",
        }

        # Without JavaScript: a plain form post, in Swahili; a student is asked more.
        form = {
            "full_name": "Juma Said",
            "email": f"juma.{event['id']}@example.go.tz",
            "phone": "0713 222 333",
            "institution": "UDSM",
            "position": "Mwanafunzi",
            "category": "student",
            "answers.field_visit": "none",
            "answers.years": "",
            "consent": "yes",
        }
        refused = await client.post(f"/register/{event['id']}", data=form)
        assert refused.status_code == 422
        assert 'id="answers.university-error">Sehemu hii inahitajika.<' in refused.text
        done = await client.post(
            f"/register/{event['id']}", data={**form, "answers.university": "UDSM"}
        )
        assert done.status_code == 201, done.text
        nominated = await client.post(
            f"/register/{event['id']}",
            data={**form, "email": "x." + form["email"], "category": "officer"},
        )
        assert nominated.status_code == 409 and "huteuliwa" in nominated.text
