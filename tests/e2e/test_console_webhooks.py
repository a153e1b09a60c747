"""The console's webhooks page in Debian's Chromium, without JavaScript, at 390 px, against
the real services: tests/e2e/conftest.py's ``console_stack`` and a webhooks service of
this module's own, on the port the console is pointed at (``CONSOLE_WEBHOOKS_URL``),
trusting the console's JWKS.

An admin creates a subscription to a receiver on 127.0.0.1 (the test stack's allow-list
lets loopback through), sees its secret once, a registration reaches the receiver signed
with that secret and is listed with its HTTP status; paused, the next registration is
recorded but not sent; a delivery that failed for good is sent again from its page; a private target is refused beside the field; an organiser is
refused the page; webhooks not answering is said so. Axe finds nothing, in both languages.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from shared.contracts.registration import ParticipantRegisteredV2
from tests.e2e.test_console_flows import Stack, browser, no_axe_violations, sign_in
from tests.e2e.test_webhooks import STREAMS, Receiver, caught_up
from tests.helpers import create_event, participant
from tests.stack import (
    ServiceFactory,
    ServiceHandle,
    consumer_group_at_end,
    release_after_last_user,
    unique_suffix,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smtp(console_stack):
    return console_stack.smtp


@pytest.fixture(scope="module")
def sms(console_stack):
    return console_stack.sms


@pytest.fixture(scope="module")
async def stack(console_stack, request) -> AsyncIterator[Stack]:
    yield Stack(
        console_stack.registration,
        console_stack.notification,
        console_stack.console,
        console_stack.admin,
    )
    await release_after_last_user(request, "console_stack", console_stack)


@pytest.fixture(scope="module")
async def webhooks(stack, console_stack, kafka, mongo, stack_dir) -> AsyncIterator[ServiceHandle]:
    """Webhooks on the console's ``CONSOLE_WEBHOOKS_URL`` port, trusting its tokens; its
    consumer group starts at the streams' ends (only this module's events)."""
    env = stack.console.env
    port = urlsplit(env["CONSOLE_WEBHOOKS_URL"]).port
    trust = {k: v for k, v in env.items() if k.startswith("MKUTANO_JWT_")}
    group = await consumer_group_at_end(kafka.bootstrap, STREAMS, prefix="webhooks-console")
    factory = ServiceFactory(
        kafka=kafka,
        mongo=mongo,
        smtp=console_stack.smtp,
        sms=console_stack.sms,
        admin_key=console_stack.admin_key,
        workdir=stack_dir / f"console-webhooks-{secrets.token_hex(3)}",
    )
    try:
        handle = await factory.start(
            "webhooks",
            port=port,
            db_suffix=unique_suffix(),
            WEBHOOKS_CONSUMER_GROUP=group,
            WEBHOOKS_SCAN_INTERVAL_S="0.5",
            # One quick retry, then the delivery has failed (and may be sent again).
            WEBHOOKS_RETRY_SCHEDULE_S="[0.3]",
            WEBHOOKS_RETRY_JITTER="0.1",
            WEBHOOKS_HOLD_S="1",
            **trust,
        )
        await caught_up(handle, console_stack.admin_key)
        yield handle
    finally:
        await factory.close()


@pytest.fixture
def receiver() -> Any:
    with Receiver() as r:
        yield r


async def register(stack: Stack, event_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=30) as client:
        r = await client.post(f"/api/v1/events/{event_id}/registrations", json=participant())
    assert r.status_code == 201, r.text
    return r.json()


async def rows_of(page: Any) -> list[list[str]]:
    """The delivery log's entries as the page shows them, newest first: time, event type,
    status, attempts, HTTP status, next retry."""
    rows = page.locator("#deliveries > li")
    return [
        [c.strip() for c in await rows.nth(i).locator("dd").all_inner_texts()]
        for i in range(await rows.count())
    ]


async def log_shows(page: Any, predicate: Any) -> bool:
    await page.reload()
    return bool(predicate(await rows_of(page)))


async def test_webhooks_not_answering_is_said_so(stack) -> None:
    """Before this module's webhooks starts, its port does not answer."""
    admin = await stack.user(["admin"])
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, stack.console, admin, "/webhooks")
        response = await page.reload()
        assert response.status == 503
        assert "The webhooks service cannot be reached now" in await page.content()
        await no_axe_violations(page)


async def test_an_admin_subscribes_a_receiver_sees_the_secret_once_and_pauses_it(
    stack, webhooks, receiver
) -> None:
    admin = await stack.user(["admin"])
    event = await create_event(stack.registration.url, stack.admin, title_en="Hooks day")
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, stack.console, admin, "/webhooks")
        assert page.url.endswith("/webhooks")
        await no_axe_violations(page)
        # The header nav links the page for an admin.
        assert await page.get_by_role("link", name="Webhooks").count() == 1
        await page.goto(f"{stack.console.url}/webhooks?lang=sw")
        await no_axe_violations(page)
        assert "Usajili mpya" in await page.content()
        await page.goto(f"{stack.console.url}/webhooks?lang=en")

        # A private target is refused beside the field, nothing created.
        await page.get_by_label("Target URL").fill("http://10.0.0.1/hook")
        await page.get_by_label("System name").fill("Private")
        await page.get_by_label("Owner's email").fill("ict@example.go.tz")
        await page.get_by_label("Participants' registrations").check()
        await page.get_by_role("button", name="Create the subscription").click()
        await page.wait_for_load_state()
        error = page.locator("#url-error")
        assert await error.count() == 1 and (await error.inner_text()).strip()
        assert await page.get_by_label("Target URL").get_attribute("aria-invalid") == "true"
        assert await page.locator("#subscriptions").count() == 0
        await no_axe_violations(page)

        # A loopback receiver (on the test stack's allow-list) is accepted.
        await page.get_by_label("Target URL").fill(receiver.url)
        await page.get_by_label("System name").fill("TSMS")
        await page.get_by_role("button", name="Create the subscription").click()
        await page.wait_for_load_state()
        assert re.search(r"/webhooks/[^/?]+$", page.url), page.url
        assert "it will not be shown again" in await page.content()
        secret = await page.locator("#secret-value").input_value()
        assert secret.startswith("whsec_")
        await no_axe_violations(page)
        await page.reload()
        assert await page.locator("#secret-value").count() == 0
        assert secret not in await page.content()
        await page.goto(f"{stack.console.url}/webhooks")
        assert secret not in await page.content()
        assert "TSMS" in await page.locator("#subscriptions").inner_text()
        await page.get_by_role("link", name="TSMS").click()
        await page.wait_for_load_state()
        subscription_page = page.url

        # A registration reaches the receiver, signed with the secret shown.
        first = await register(stack, event["id"])
        await wait_until(
            lambda: bool(receiver.registrations_of(event["id"])),
            timeout=90,
            interval=0.3,
            message="the receiver got the registration",
        )
        (got,) = receiver.registrations_of(event["id"])
        verified = Webhook(secret).verify(got.body, got.headers)
        assert verified["data"]["registration_id"] == first["id"]
        # The page lists it: delivered, HTTP 200, an attempt.
        await wait_until(
            lambda: log_shows(page, lambda rows: any("200" in r for r in rows)),
            timeout=60,
            interval=0.5,
            message="the delivery log lists the delivery with HTTP 200",
        )
        (row,) = await rows_of(page)
        assert row[1] == got.event["type"] and row[2] == "delivered" and row[3] == "1"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", row[0])
        await no_axe_violations(page)
        await page.goto(f"{subscription_page}?lang=sw")
        assert "imefika" in await page.locator("#deliveries").inner_text()
        await no_axe_violations(page)
        await page.goto(f"{subscription_page}?lang=en")

        # Paused: the next registration is recorded, not sent.
        await page.get_by_role("button", name="Pause").click()
        await page.wait_for_load_state()
        assert await page.locator("#state").inner_text() == "paused"
        assert "paused by an admin" in await page.content()
        await no_axe_violations(page)
        await register(stack, event["id"])
        await wait_until(
            lambda: log_shows(page, lambda rows: len(rows) == 2),
            timeout=60,
            interval=0.5,
            message="the paused subscription records the second registration",
        )
        newest = (await rows_of(page))[0]
        assert newest[2] == "pending" and newest[4] == "—"
        assert len(receiver.registrations_of(event["id"])) == 1
        # Resumed: it goes out.
        await page.get_by_role("button", name="Resume").click()
        await page.wait_for_load_state()
        await wait_until(
            lambda: len(receiver.registrations_of(event["id"])) == 2,
            timeout=60,
            interval=0.3,
            message="the held registration is sent after the resume",
        )

        # Rotation and deletion are confirmed first.
        await page.get_by_role("button", name="Rotate the secret").click()
        await page.wait_for_load_state()
        assert "Issue a new secret?" in await page.content()
        await no_axe_violations(page)
        await page.get_by_role("button", name="Yes, go ahead").click()
        await page.wait_for_load_state()
        rotated = await page.locator("#secret-value").input_value()
        assert rotated.startswith("whsec_") and rotated != secret
        await page.get_by_role("button", name="Delete").click()
        await page.wait_for_load_state()
        await page.get_by_role("button", name="Yes, go ahead").click()
        await page.wait_for_load_state()
        assert page.url.endswith("/webhooks")
        assert "The subscription is deleted." in await page.content()
        assert await page.locator("#subscriptions").count() == 0
        await no_axe_violations(page)


async def test_an_admin_sends_a_failed_delivery_again(stack, webhooks, receiver) -> None:
    receiver.status = 500
    async with httpx.AsyncClient(base_url=webhooks.url, headers=stack.admin, timeout=30) as api:
        r = await api.post(
            "/api/v1/subscriptions",
            json={
                "url": receiver.url,
                "event_types": [ParticipantRegisteredV2.ce_type()],
                "label": "Failing receiver",
                "owner_email": "ict@example.go.tz",
            },
        )
        assert r.status_code == 201, r.text
        sub = r.json()
        try:
            admin = await stack.user(["admin"])
            event = await create_event(stack.registration.url, stack.admin)
            await register(stack, event["id"])
            async with browser(width=390, height=844) as context:
                page = context.pages[0]
                await sign_in(page, stack.console, admin, f"/webhooks/{sub['id']}")
                await wait_until(
                    lambda: log_shows(page, lambda rows: rows and rows[0][2].startswith("failed")),
                    timeout=90,
                    interval=0.5,
                    message="the delivery failed for good (an attempt and one retry)",
                )
                (row,) = await rows_of(page)
                assert row[2] == "failed (HTTP 500)" and row[3] == "2" and row[4] == "500"
                assert all(r.answered == 500 for r in receiver.registrations_of(event["id"]))
                await no_axe_violations(page)
                receiver.status = 200
                await page.get_by_role("button", name="Send again").click()
                await page.wait_for_load_state()
                assert "The delivery will be sent again." in await page.content()
                await wait_until(
                    lambda: any(r.answered == 200 for r in receiver.registrations_of(event["id"])),
                    timeout=60,
                    interval=0.3,
                    message="the replay reached the receiver",
                )
                await wait_until(
                    lambda: log_shows(page, lambda rows: rows and rows[0][2] == "delivered"),
                    timeout=60,
                    interval=0.5,
                    message="the log lists the replayed delivery as delivered",
                )
                (row,) = await rows_of(page)
                assert row[4] == "200"
                assert await page.get_by_role("button", name="Send again").count() == 0
                await no_axe_violations(page)
        finally:
            await api.delete(f"/api/v1/subscriptions/{sub['id']}")


async def test_an_organiser_is_refused_the_webhooks_page(stack, webhooks) -> None:
    organiser = await stack.user(["organiser"])
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, stack.console, organiser)
        assert await page.get_by_role("link", name="Webhooks").count() == 0
        response = await page.goto(f"{stack.console.url}/webhooks")
        assert response.status == 403
        await no_axe_violations(page)
