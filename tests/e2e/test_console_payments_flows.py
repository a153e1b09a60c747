"""The organiser's dashboard shows the event's money (issue 15): registration, payments,
the GePG simulator and the console as real processes, the services trusting the
console's tokens. After one participant pays their control number at the simulator and
another has not paid yet, the dashboard in Debian's Chromium at 390 px shows the amounts
collected and outstanding from payments' bills summary, axe-clean, in both languages; the
payments page lists the bills (paid, outstanding, their control numbers), filters them by
status, and hands over the CSV and a receipt PDF through the console; a registrar is
refused it.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

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


async def organiser(stack: MoneyStack, roles: tuple[str, ...] = ("organiser",)) -> str:
    username = f"u{secrets.token_hex(4)}"
    async with httpx.AsyncClient(base_url=stack.console.url, timeout=20) as client:
        r = await client.post(
            "/api/v1/users",
            json={
                "username": username,
                "name": "Amina Salim",
                "roles": list(roles),
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


async def one_paid_one_not(stack: MoneyStack) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    """A paid event with two registrations: the first's bill paid at the simulator, the
    second's outstanding. The event id, both bills, the first payer's name."""
    spec = paid_event()
    names = []
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=20) as c:
        r = await c.post("/api/v1/events", json=spec, headers=stack.admin)
        assert r.status_code == 201, r.text
        for name in ("Zawadi Kombo", "Baraka Mushi"):
            body = participant(category="ict", full_name=name)
            body.pop("cadre", None)
            r = await c.post(f"/api/v1/events/{spec['id']}/registrations", json=body)
            assert r.status_code == 201 and r.json()["status"] == "pending_payment", r.text
            names.append((r.json()["reference"], name))
    bills = await issued_bills(stack, spec["id"], 2)
    first_ref = names[0][0]
    first = next(b for b in bills if b["lines"][0]["reference"] == first_ref)
    second = next(b for b in bills if b is not first)
    async with httpx.AsyncClient(base_url=stack.gepg_url, timeout=20) as c:
        r = await c.post(
            "/api/v1/payments",
            json={"control_number": first["control_number"], "amount": FEE, "channel": "MOBILE"},
        )
        assert r.status_code == 201, r.text

    async def paid() -> bool:
        async with httpx.AsyncClient(base_url=stack.payments.url, timeout=20) as c:
            r = await c.get(f"/api/v1/bills/{first['id']}", headers=stack.admin)
        return r.status_code == 200 and r.json()["status"] == "paid"

    await wait_until(paid, timeout=90, message="payments has applied the payment")
    return spec["id"], first, second, names[0][1]


async def test_the_payments_page_lists_filters_and_hands_over_the_csv_and_a_receipt(
    money: MoneyStack, tmp_path
) -> None:
    event_id, first, second, payer = await one_paid_one_not(money)
    async with httpx.AsyncClient(base_url=money.registration.url, timeout=20) as c:
        code = (await c.get(f"/api/v1/events/{event_id}", headers=money.admin)).json()["code"]
    username = await organiser(money)
    registrar = await organiser(money, ("registrar",))
    url = f"{money.console.url}/events/{event_id}/payments"
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, money.console, username, f"/events/{event_id}?lang=en")
        # From the dashboard, the organiser follows the link to the event's bills.
        await page.locator("#payments-link").click()
        await page.wait_for_url(re.compile(rf"/events/{event_id}/payments$"))
        paid_row = page.locator(f'tr[data-bill="{first["id"]}"]')
        open_row = page.locator(f'tr[data-bill="{second["id"]}"]')
        assert await paid_row.locator(".status").inner_text() == "Paid"
        assert await paid_row.locator(".control-number").inner_text() == first["control_number"]
        assert await paid_row.locator(".paid").inner_text() == "400,000"
        assert await paid_row.locator(".payer").inner_text() == payer
        assert await open_row.locator(".status").inner_text() == "Outstanding"
        assert await open_row.locator(".control-number").inner_text() == second["control_number"]
        assert await open_row.locator(".paid").inner_text() == "0"
        assert await page.locator("#collected").inner_text() == "TZS 400,000"
        assert await page.locator("#outstanding").inner_text() == "TZS 400,000"
        # 390 px: the page itself does not scroll sideways (the table scrolls in its region).
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await no_axe_violations(page)

        # Only the paid bill, by status (a GET form: no JavaScript needed).
        await page.select_option("#status", "paid")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url(re.compile(r"status=paid"))
        assert await page.locator("#bills tbody tr").count() == 1
        assert await paid_row.count() == 1 and await open_row.count() == 0
        assert await page.locator("#collected").inner_text() == "TZS 400,000"
        assert await page.locator("#outstanding").inner_text() == "TZS 0"
        await no_axe_violations(page)

        # The CSV of the same filters, through the console.
        csv_link = page.locator("#bills-csv")
        assert (
            await csv_link.get_attribute("href") == f"/events/{event_id}/payments.csv?status=paid"
        )
        async with page.expect_download() as download_info:
            await csv_link.click()
        saved = tmp_path / "bills.csv"
        await (await download_info.value).save_as(saved)
        rows = list(csv.DictReader(io.StringIO(saved.read_text("utf-8-sig"))))  # noqa: ASYNC240
        assert [(r["bill_id"], r["status"], r["control_number"]) for r in rows] == [
            (first["id"], "paid", first["control_number"])
        ]
        assert rows[0]["payer"] == payer and rows[0]["paid_total_tzs"] == str(FEE)

        # The receipt PDF of the payment, through the console: it reads the amount.
        receipt = paid_row.locator("a.receipt")
        async with page.expect_download() as download_info:
            await receipt.click()
        saved = tmp_path / "receipt.pdf"
        await (await download_info.value).save_as(saved)
        text = "".join(
            p.extract_text() or ""
            for p in PdfReader(io.BytesIO(saved.read_bytes())).pages  # noqa: ASYNC240
        )
        assert "400,000" in text, text
        html = await page.content()
        assert "eyJ" not in html and "Bearer" not in html

        # In Swahili: the statuses in words, axe-clean.
        await page.goto(f"{url}?lang=sw")
        assert await paid_row.locator(".status").inner_text() == "Imelipwa"
        assert await open_row.locator(".status").inner_text() == "Inadaiwa"
        assert "Zilizokusanywa" in await page.locator("#totals").inner_text()
        await no_axe_violations(page)

    # An auditor sees the bills without the payers' names, and no invoice or receipt
    # (payments gives those to organisers only).
    auditor = await organiser(money, ("auditor",))
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, money.console, auditor, "/events?lang=en")
        # From the events list, the auditor follows the event's payments link.
        await page.get_by_role("link", name=re.compile(rf"^Payments\s*: {code}$")).click()
        await page.wait_for_url(re.compile(rf"/events/{event_id}/payments$"))
        paid_row = page.locator(f'tr[data-bill="{first["id"]}"]')
        assert await paid_row.locator(".status").inner_text() == "Paid"
        assert (
            await paid_row.locator(".payer").inner_text() == "the name is shown to organisers only"
        )
        assert await page.locator("a.receipt").count() == 0
        assert payer not in await page.content()
        await no_axe_violations(page)

        # Payments stops answering: the page says so (503, not a 500), and comes back.
        await money.payments.stop()
        try:
            response = await page.goto(f"{url}?lang=en")
            assert response is not None and response.status == 503
            assert "did not answer" in await page.locator("#payments-unavailable").inner_text()
            assert await page.locator("#bills").count() == 0
            await no_axe_violations(page)
        finally:
            await money.payments.restart()

    # A registrar is refused the page.
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, money.console, registrar)
        response = await page.goto(url)
        assert response is not None and response.status == 403
        assert await page.locator("#bills").count() == 0
        await no_axe_violations(page)
