"""The organiser's dashboard shows the event's money (issue 15): registration, payments,
the GePG simulator and the console as real processes, the services trusting the
console's tokens. After one participant pays their control number at the simulator and
another has not paid yet, the dashboard in Debian's Chromium at 390 px shows the amounts
collected and outstanding from payments' bills summary, axe-clean, in both languages.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from deploy import embedded
from services.payments.gepgxml import generate_dev_keys
from tests.e2e.test_console_flows import PASSWORD, browser, no_axe_violations, sign_in
from tests.e2e.test_payments_flows import FEE, paid_event
from tests.helpers import participant
from tests.stack import (
    Process,
    ServiceFactory,
    ServiceHandle,
    start_gepg,
    unique_suffix,
    wait_until,
)

pytestmark = pytest.mark.e2e


# This module starts a notification service of its own: its messages go to captures of
# its own, never mixed with the session notification's copies (tests/conftest.py).
@pytest.fixture(scope="module")
def smtp(private_smtp):
    return private_smtp


@pytest.fixture(scope="module")
def sms(private_sms):
    return private_sms


@dataclass
class MoneyStack:
    registration: ServiceHandle
    payments: ServiceHandle
    console: ServiceHandle
    gepg: Process
    gepg_url: str
    admin: dict[str, str]


@pytest.fixture(scope="module")
async def money(kafka, mongo, smtp, sms, admin_key, stack_dir) -> AsyncIterator[MoneyStack]:
    work = stack_dir / f"console-payments-{secrets.token_hex(3)}"
    work.mkdir(parents=True)
    keys = work / "gepg"
    for side in ("sp", "gepg"):
        generate_dev_keys(keys, side)
    ports = {
        "registration": embedded.free_port(),
        "payments": embedded.free_port(),
        "console": embedded.free_port(),
    }
    gepg_port = embedded.free_port()
    gepg = await start_gepg(
        keys,
        gepg_port,
        f"http://127.0.0.1:{ports['payments']}/api/v1/gepg/callback",
        work / "gepg.log",
    )
    factory = ServiceFactory(
        kafka=kafka, mongo=mongo, smtp=smtp, sms=sms, admin_key=admin_key, workdir=work
    )
    trust = embedded.console_env(ports)
    suffix = unique_suffix()
    group = f"-{secrets.token_hex(3)}"
    try:
        registration, payments, console = await factory.start_many(
            (
                "registration",
                {
                    "port": ports["registration"],
                    "db_suffix": suffix,
                    "REGISTRATION_PAYMENTS_CONSUMER_GROUP": f"registration{group}",
                    **trust,
                },
            ),
            (
                "payments",
                {
                    "port": ports["payments"],
                    "db_suffix": suffix,
                    "PAYMENTS_CONSUMER_GROUP": f"payments{group}",
                    "PAYMENTS_SCAN_INTERVAL_S": "0.2",
                    "PAYMENTS_SUBMIT_RETRY_BASE_S": "0.5",
                    "PAYMENTS_SUBMIT_RETRY_MAX_S": "2",
                    **embedded.gepg_env(keys, gepg_port),
                    **trust,
                },
            ),
            ("console", {"port": ports["console"], "db_suffix": suffix, **trust}),
        )
        yield MoneyStack(
            registration, payments, console, gepg, f"http://127.0.0.1:{gepg_port}",
            {"Authorization": f"Bearer {admin_key}"},
        )  # fmt: skip
    finally:
        await factory.close()
        gepg.stop()


async def organiser(stack: MoneyStack) -> str:
    username = f"u{secrets.token_hex(4)}"
    async with httpx.AsyncClient(base_url=stack.console.url, timeout=20) as client:
        r = await client.post(
            "/api/v1/users",
            json={
                "username": username,
                "name": "Amina Salim",
                "roles": ["organiser"],
                "password": PASSWORD,
                "language": "en",
            },  # fmt: skip
            headers=stack.admin,
        )
    assert r.status_code == 201, r.text
    return username


async def issued_bills(stack: MoneyStack, event_id: str, count: int) -> list[dict[str, Any]]:
    async def find() -> list[dict[str, Any]] | None:
        async with httpx.AsyncClient(base_url=stack.payments.url, timeout=20) as c:
            r = await c.get("/api/v1/bills", params={"event_id": event_id}, headers=stack.admin)
        bills = [b for b in (r.json() if r.status_code == 200 else []) if b["control_number"]]
        return bills if len(bills) == count else None

    return await wait_until(find, timeout=90, message="the bills with their control numbers")


async def test_the_dashboard_shows_collected_and_outstanding_after_a_payment(
    money: MoneyStack,
) -> None:
    spec = paid_event()
    async with httpx.AsyncClient(base_url=money.registration.url, timeout=20) as c:
        r = await c.post("/api/v1/events", json=spec, headers=money.admin)
        assert r.status_code == 201, r.text
        for _ in range(2):
            body = participant(category="ict")
            body.pop("cadre", None)
            r = await c.post(f"/api/v1/events/{spec['id']}/registrations", json=body)
            assert r.status_code == 201 and r.json()["status"] == "pending_payment", r.text
    first, _second = await issued_bills(money, spec["id"], 2)
    async with httpx.AsyncClient(base_url=money.gepg_url, timeout=20) as c:
        r = await c.post(
            "/api/v1/payments",
            json={"control_number": first["control_number"], "amount": FEE, "channel": "MOBILE"},
        )
        assert r.status_code == 201, r.text

    async def paid() -> bool:
        async with httpx.AsyncClient(base_url=money.payments.url, timeout=20) as c:
            r = await c.get(
                "/api/v1/bills/summary", params={"event_id": spec["id"]}, headers=money.admin
            )
        return r.status_code == 200 and r.json()["collected_tzs"] == FEE

    await wait_until(paid, timeout=90, message="payments has applied the payment")
    username = await organiser(money)
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, money.console, username, f"/events/{spec['id']}?lang=en")
        assert await page.locator("#collected").inner_text() == "TZS 400,000"
        assert await page.locator("#outstanding").inner_text() == "TZS 400,000"
        assert await page.locator("#expired").inner_text() == "TZS 0"
        assert await page.locator("#payments-unavailable").count() == 0
        await no_axe_violations(page)
        await page.goto(f"{money.console.url}/events/{spec['id']}?lang=sw")
        assert "Zilizokusanywa" in await page.locator("#payments").inner_text()
        await no_axe_violations(page)
