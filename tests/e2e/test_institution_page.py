"""Issue 13 B: the institution page in Debian's Chromium at 390 px, axe-clean: the
contact person asks for a link, opens it from the email in the SMTP capture, nominates
one officer and sees their status; the page in both languages, its errors too."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.axe import axe_violations
from tests.browser import chromium_page
from tests.e2e.test_institution_sign_in import link_in, new_institution, sign_in_mail
from tests.e2e.test_notification_flows import template_of, to
from tests.helpers import create_event

pytestmark = pytest.mark.e2e


async def _no_violations(page, what: str) -> None:
    found = await axe_violations(page)
    assert found == [], f"{what}: {found}"
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{what}: {width} px wide"


async def test_the_institution_page_in_chromium_at_390_px(platform, tmp_path) -> None:
    base, admin = platform.registration.url, platform.admin_headers
    event = await create_event(base, admin, capacity=50, title_en=f"Seminar {secrets.token_hex(3)}")
    institution = await new_institution(base, admin, language="en")
    officer = f"officer.{secrets.token_hex(4)}@example.go.tz"
    async with chromium_page(width=390, height=844) as page:
        for lang in ("sw", "en"):
            await page.goto(f"{base}/institution?lang={lang}")
            await _no_violations(page, f"start ({lang})")
        await page.click("button[type=submit]")  # no email: the error summary
        assert await page.locator("#error-summary").count() == 1
        await _no_violations(page, "start with errors")
        await page.fill("#email", institution["email"])
        await page.click("button[type=submit]")
        await page.wait_for_selector("p[role=status]")
        await _no_violations(page, "link sent")

        (message,) = await platform.smtp.wait_for(sign_in_mail(institution["email"]), timeout=30)
        await page.goto(link_in(message, "en"))
        await _no_violations(page, "sign-in link page")
        await page.click("button[type=submit]")
        await page.wait_for_url("**/institution/home?lang=en")
        await page.goto(f"{base}/institution/home?lang=en&event={event['id']}")
        assert institution["name_en"] in await page.inner_text("h1")
        await _no_violations(page, "institution page")

        # Nominate one: first with a missing field, then complete.
        await page.fill("#full_name", "Baraka Mussa Kileo")
        await page.click("form[action^='/institution/nominations?'] button[type=submit]")
        assert await page.locator("#error-summary").count() == 1
        await _no_violations(page, "nomination with errors")
        await page.fill("#email", officer)
        await page.fill("#phone", "0754 321 987")
        await page.fill("#position", "ICT Officer")
        await page.select_option("#category", index=1)
        await page.check("#declaration")
        await page.click("form[action^='/institution/nominations?'] button[type=submit]")
        await page.wait_for_selector("p[role=status]")
        nominee = page.locator(".nominees li", has_text="Baraka Mussa Kileo")
        assert await nominee.count() == 1
        assert "Confirmed" in await nominee.locator("[data-status]").inner_text()
        assert await nominee.locator("[data-payment]").count() == 1  # the payments slot
        await _no_violations(page, "after nominating")
        await page.screenshot(path=str(tmp_path / "institution-390.png"), full_page=True)

        await page.goto(f"{base}/institution/home?lang=sw&event={event['id']}")
        assert "Imethibitishwa" in await page.locator(".nominees [data-status]").first.inner_text()
        await _no_violations(page, "institution page (sw)")

    # The nominee got their own confirmation, with their own manage link.
    def confirmation(m):
        return to(officer)(m) and template_of(m) == "confirmation"

    (mail,) = await platform.smtp.wait_for(confirmation, timeout=30)
    assert "/my/" in mail.get_body(("plain",)).get_content()


DEPARTMENT = {
    "id": "department",
    "type": "short_text",
    "label_sw": "Idara yako",
    "label_en": "Your department",
    "required": True,
}
WORKSHOP = {
    "id": "workshop",
    "type": "single_choice",
    "label_sw": "Warsha",
    "label_en": "Workshop",
    "required": True,
    "choices": [
        {"code": "cloud", "label_sw": "Wingu", "label_en": "Cloud"},
        {"code": "security", "label_sw": "Usalama", "label_en": "Security"},
    ],
}


async def test_the_institution_page_asks_the_events_questions(platform) -> None:
    """A contact person nominating into an event with required custom questions answers
    them on the institution page, as a participant would on the registration page: left
    blank, each is named in the summary and beside its field; answered, the nominee is
    registered with the answers (the organiser's view shows them). No JavaScript."""
    base, admin = platform.registration.url, platform.admin_headers
    event = await create_event(
        base, admin, capacity=50, title_en=f"Workshops {secrets.token_hex(3)}",
        questions=[DEPARTMENT, WORKSHOP],
    )  # fmt: skip
    institution = await new_institution(base, admin, language="en")
    officer = f"officer.{secrets.token_hex(4)}@example.go.tz"
    async with chromium_page(width=390, height=844) as page:
        await page.context.route("**/*.js", lambda route: route.abort())
        await page.goto(f"{base}/institution?lang=en")
        await page.fill("#email", institution["email"])
        await page.click("button[type=submit]")
        (message,) = await platform.smtp.wait_for(sign_in_mail(institution["email"]), timeout=30)
        await page.goto(link_in(message, "en"))
        await page.click("button[type=submit]")
        await page.wait_for_url("**/institution/home?lang=en")
        await page.goto(f"{base}/institution/home?lang=en&event={event['id']}")
        assert await page.get_by_label("Your department").count() == 1
        await _no_violations(page, "institution page with questions")

        await page.fill("#full_name", "Neema Idara Swai")
        await page.fill("#email", officer)
        await page.fill("#phone", "0754 321 988")
        await page.fill("#position", "Systems Analyst")
        await page.select_option("#category", index=1)
        await page.check("#declaration")
        submit = "form[action^='/institution/nominations?'] button[type=submit]"
        await page.click(submit)
        summary = await page.locator("#error-summary").inner_text()
        assert "Your department" in summary and "Workshop" in summary, summary
        assert await page.locator("#answers\\.department-error").count() == 1
        await _no_violations(page, "unanswered questions")
        # What was typed is kept; the answers complete it.
        assert await page.input_value("#full_name") == "Neema Idara Swai"
        await page.fill("#answers\\.department", "ICT Directorate")
        await page.check("#answers\\.workshop-security")
        await page.check("#declaration")
        await page.click(submit)
        await page.wait_for_selector("p[role=status]")
        assert await page.locator(".nominees li", has_text="Neema Idara Swai").count() == 1

    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        r = await client.get(
            f"/api/v1/events/{event['id']}/registrations", params={"q": officer}, headers=admin
        )
    (nominee,) = r.json()["items"]
    assert nominee["answers"] == {"department": "ICT Directorate", "workshop": "security"}
    assert nominee["via"] == "nomination"
