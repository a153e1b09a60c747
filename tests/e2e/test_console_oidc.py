"""Signing in to the console, in Debian's Chromium: through a real OpenID Connect provider,
and with a local account's second factor.

The provider (``oidc-provider-mock``, started by tests/e2e/conftest.py's ``console_stack``
as a process of its own) serves discovery, an authorization form, a token endpoint and a
JWKS; the console is a client registered with its callback, so the provider checks the
client's secret and redirect URI, and it requires the nonce. Its form lists the people of
``deploy.embedded.DEV_OIDC_PEOPLE`` with their claims (roles, locale).

What a person sees: the console's "government identity" button leads to the provider and
back, signed in, in the language of their ``locale`` claim (or the one they chose on the
sign-in page, kept for their next sign-in); the services accept the token the console signs
for them, and the registration's history names them; a person without a Mkutano role is
refused in the page's language; the provider's answer cannot be used twice. No
JavaScript is needed anywhere on the way. A local account with TOTP signs in only with
its authenticator's current code.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest

from tests.axe import axe_violations
from tests.browser import chromium_context
from tests.helpers import create_event, participant
from tests.stack import release_after_last_user

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password 1"


@pytest.fixture(scope="module")
async def stack(console_stack, request):
    yield console_stack
    await release_after_last_user(request, "console_stack", console_stack)


async def no_axe_violations(page: Any) -> None:
    violations = await axe_violations(page)
    assert violations == [], (page.url, violations)


async def through_the_provider(page: Any, stack: Any, who: str, query: str = "") -> None:
    """From the console's sign-in page, through the provider's form as ``who``, and back."""
    await page.goto(f"{stack.console.url}/{query}")
    await no_axe_violations(page)
    label = "Sign in with the government identity" if "lang=en" in query else (
        "Ingia kwa utambulisho wa Serikali")  # fmt: skip
    await page.get_by_role("link", name=label).click()
    await page.wait_for_load_state()
    assert page.url.startswith(f"{stack.oidc_url}/oauth2/authorize?"), page.url
    await page.get_by_role("button", name=who).click()
    await page.wait_for_load_state()


async def test_a_person_of_the_identity_provider_signs_in_and_acts_in_their_own_name(
    stack,
) -> None:
    event = await create_event(
        stack.registration.url, stack.admin, requires_approval=True, title_en="OIDC day"
    )
    person = participant(full_name="Zawadi Oidc Mushi", language="en")
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
        r = await client.post(f"/api/v1/events/{event['id']}/registrations", json=person)
    assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
    reference, registration_id = r.json()["reference"], r.json()["id"]

    async with chromium_context(width=390, height=844) as context:
        await context.route("**/*.js", lambda route: route.abort())  # no JavaScript needed
        page = context.pages[0]
        target = f"/events/{event['id']}/registrations/{reference}"
        await through_the_provider(page, stack, "organiser@ega.go.tz",
                                   f"?next={target}")  # fmt: skip
        # Back at the page asked for, signed in; Swahili from the `locale` claim (sw-TZ).
        assert urlsplit(page.url).path == target
        assert await page.locator("html").get_attribute("lang") == "sw"
        assert "Asha Mratibu" in await page.content()
        await no_axe_violations(page)
        # Registration accepted the console's token for this person: the page shows the
        # registration, and approving it works.
        assert await page.locator("#status").inner_text() == "Inasubiri kuidhinishwa"
        await page.get_by_role("button", name="Idhinisha").click()
        await page.wait_for_load_state()
        assert await page.locator("#status").inner_text() == "Imethibitishwa"
        # The history names who approved, with the name the provider gave.
        approved = page.locator("#history li[data-action='approved']")
        assert "Asha Mratibu" in await approved.inner_text()
        await no_axe_violations(page)

    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
        history = await client.get(
            f"/api/v1/registrations/{registration_id}/history", headers=stack.admin
        )
    assert history.status_code == 200, history.text
    assert [e["by"] for e in history.json()["history"]] == [
        "participant",
        "oidc:organiser@ega.go.tz",
    ]


async def test_the_language_comes_from_the_locale_claim_or_the_persons_own_choice(stack) -> None:
    async with chromium_context() as context:
        page = context.pages[0]
        # The coordinator's provider says en-GB: English, on the coordinators' pages.
        await through_the_provider(page, stack, "coordinator@ega.go.tz")
        assert await page.locator("html").get_attribute("lang") == "en"
        assert await page.get_by_role("link", name="Resolutions").count() >= 1
        await no_axe_violations(page)
        await context.clear_cookies()
        # Swahili chosen on the sign-in page wins over the claim, and is kept: the next
        # sign-in, with nothing chosen, is in Swahili too.
        await through_the_provider(page, stack, "coordinator@ega.go.tz", "?lang=sw")
        assert await page.locator("html").get_attribute("lang") == "sw"
        await context.clear_cookies()
        await through_the_provider(page, stack, "coordinator@ega.go.tz")
        assert await page.locator("html").get_attribute("lang") == "sw"
        # A coordinator lands on the resolutions (there is no events page for them).
        assert urlsplit(page.url).path == "/coordinators"
        # Back to English from inside the console; kept for the next sign-in as well.
        await page.get_by_role("link", name="English").click()
        await page.wait_for_load_state()
        assert await page.locator("html").get_attribute("lang") == "en"
        await context.clear_cookies()
        await through_the_provider(page, stack, "coordinator@ega.go.tz")
        assert await page.locator("html").get_attribute("lang") == "en"


async def test_a_person_without_a_role_is_refused_and_the_providers_answer_works_once(
    stack,
) -> None:
    async with chromium_context() as context:
        page = context.pages[0]
        visited: list[str] = []
        page.on("request", lambda r: visited.append(r.url) if r.is_navigation_request() else None)
        await through_the_provider(page, stack, "no-role@ega.go.tz")
        assert urlsplit(page.url).path == "/sign-in/oidc/callback"
        alert = page.get_by_role("alert")
        assert "Akaunti yako haina jukumu lolote katika Mkutano." in await alert.inner_text()
        assert "mk_console" not in {c["name"] for c in await context.cookies()}  # no session
        await no_axe_violations(page)
        # A person with a role signs in; the same answer of the provider (code and state)
        # opened again is refused: each sign-in's state is used once.
        await context.clear_cookies()
        await through_the_provider(page, stack, "registrar@ega.go.tz")
        assert urlsplit(page.url).path == "/events"
        callbacks = [u for u in visited if "/sign-in/oidc/callback" in u]
        answer = callbacks[-1]
        assert set(parse_qs(urlsplit(answer).query)) >= {"code", "state"}
        await context.clear_cookies()
        response = await page.goto(answer)
        assert response is not None and response.status == 401
        assert "Muda wa kuingia huku umekwisha" in await page.get_by_role("alert").inner_text()


async def test_a_local_account_with_a_second_factor_needs_its_current_code(stack) -> None:
    """The other sign-in: a local account with TOTP (RFC 6238) signs in only with the
    code of its authenticator app, in a browser without JavaScript."""
    username = f"totp{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=stack.console.url, timeout=10) as client:
        r = await client.post(
            "/api/v1/users",
            json={
                "username": username,
                "name": "Tumaini Totp",
                "roles": ["registrar"],
                "password": PASSWORD,
                "language": "en",
                "totp": True,
            },  # fmt: skip
            headers=stack.admin,
        )
    assert r.status_code == 201, r.text
    app = pyotp.parse_uri(r.json()["totp_uri"])  # what the authenticator app reads
    stale = app.at(datetime.now(UTC) - timedelta(minutes=5))

    async with chromium_context(width=390, height=844) as context:
        await context.route("**/*.js", lambda route: route.abort())
        page = context.pages[0]

        async def sign_in(code: str) -> None:
            await page.goto(f"{stack.console.url}/")
            await page.get_by_label("Jina la mtumiaji").fill(username)
            await page.get_by_label("Nenosiri").fill(PASSWORD)
            await page.get_by_label("Namba ya uthibitisho (kama umeiwezesha)").fill(code)
            await page.get_by_role("button", name="Ingia", exact=True).click()
            await page.wait_for_load_state()

        for wrong in ("", stale):  # no code, then a code of five minutes ago
            await sign_in(wrong)
            refusal = await page.get_by_role("alert").inner_text()
            assert "Jina la mtumiaji, nenosiri au namba ya uthibitisho si sahihi." in refusal
            await no_axe_violations(page)
        await sign_in(app.now())
        assert urlsplit(page.url).path == "/events"
        assert await page.locator("html").get_attribute("lang") == "en"  # the account's
        assert "Tumaini Totp" in await page.content()
