"""Participation fees through GePG, end to end (issue 14): the registration, payments
and notification services and the GePG simulator as real processes, over HTTP, Kafka,
SMTP and the SMS gateway.

What is asserted is what people see: the participant's status, the control number in
their SMS and email, the ticket and receipt after paying, the bill an organiser sees,
GePG's acks (7101, 7303) and the reconciliation's discrepancies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.helpers import event_spec, participant, unique_id
from tests.stack import PrivateStack, Process, ServiceHandle, release_after_last_user, wait_until

FEE = 400_000


@dataclass
class PayStack:
    registration: ServiceHandle
    payments: ServiceHandle
    notification: ServiceHandle
    gepg: Process
    gepg_url: str
    admin: dict[str, str]
    smtp: Any
    sms: Any


@pytest.fixture(scope="module")
async def pay(pay_stack: PrivateStack, request: pytest.FixtureRequest) -> AsyncIterator[PayStack]:
    """Registration, payments, notification and the GePG simulator, with their own
    databases, consumer groups and mail/SMS captures: tests/e2e/conftest.py's
    ``pay_stack``, shared with test_payments_group_bill.py (each makes its own events)."""
    yield PayStack(
        pay_stack.registration, pay_stack.payments, pay_stack.notification,
        pay_stack.extras["gepg"], pay_stack.gepg_url, pay_stack.admin,
        pay_stack.smtp, pay_stack.sms,
    )  # fmt: skip
    await release_after_last_user(request, "pay_stack", pay_stack)


def paid_event(**overrides: Any) -> dict[str, Any]:
    return event_spec(
        categories=[
            {"code": "ict", "name_sw": "Maafisa TEHAMA", "name_en": "ICT officers", "fee_tzs": FEE},
            {"code": "guest", "name_sw": "Wageni", "name_en": "Guests"},
        ],
        **overrides,
    )


async def new_event(stack: PayStack, **overrides: Any) -> str:
    spec = paid_event(**overrides)
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=20) as c:
        r = await c.post("/api/v1/events", json=spec, headers=stack.admin)
        assert r.status_code == 201, r.text
    return spec["id"]


async def register(stack: PayStack, event_id: str, **overrides: Any) -> dict[str, Any]:
    body = participant(category="ict", **overrides)
    body.pop("cadre", None)
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=20) as c:
        r = await c.post(f"/api/v1/events/{event_id}/registrations", json=body)
        assert r.status_code == 201, r.text
    return {**r.json(), "body": body}


async def own_status(stack: PayStack, reg: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=20) as c:
        r = await c.get(
            f"/api/v1/registrations/{reg['reference']}",
            headers={"X-Manage-Token": reg["manage_token"]},
        )
        assert r.status_code == 200, r.text
    return r.json()


async def bill_of(stack: PayStack, event_id: str, *, issued: bool = True) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=stack.payments.url, timeout=20) as c:
            r = await c.get("/api/v1/bills", params={"event_id": event_id}, headers=stack.admin)
        bills = r.json() if r.status_code == 200 else []
        ready = [b for b in bills if b["control_number"] or not issued]
        return ready[0] if ready else None

    return await wait_until(find, timeout=60, message="the bill with its control number")


async def get_bill(stack: PayStack, bill_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.payments.url, timeout=20) as c:
        r = await c.get(f"/api/v1/bills/{bill_id}", headers=stack.admin)
        assert r.status_code == 200, r.text
    return r.json()


async def pay_at_gepg(stack: PayStack, control_number: str, amount: int, **extra: Any) -> dict:
    async with httpx.AsyncClient(base_url=stack.gepg_url, timeout=20) as c:
        r = await c.post(
            "/api/v1/payments",
            json={"control_number": control_number, "amount": amount, "channel": "MOBILE", **extra},
        )
        assert r.status_code == 201, r.text
    return r.json()


async def controls(stack: PayStack, **values: Any) -> None:
    async with httpx.AsyncClient(base_url=stack.gepg_url, timeout=20) as c:
        r = await c.post("/api/v1/controls", json=values)
        assert r.status_code == 200, r.text


def to(address: str, template: str):
    return lambda m: m["To"] == address and m["X-Mkutano-Template"] == template


async def test_paying_the_control_number_confirms_with_ticket_and_receipt(pay: PayStack) -> None:
    event_id = await new_event(pay)
    reg = await register(pay, event_id)
    assert reg["status"] == "pending_payment"
    email = reg["body"]["email"]
    bill = await bill_of(pay, event_id)
    number = bill["control_number"]
    assert bill["amount_tzs"] == FEE and bill["payer"]["email"] == email
    # The control number by SMS and by email, in the participant's language (sw).
    [mail] = await pay.smtp.wait_for(to(email, "payment_control_number"), timeout=60)
    assert number in mail["Subject"] and "400,000" in mail.get_body(("plain",)).get_content()
    sms = await pay.sms.wait_for(lambda m: number in m["text"], timeout=60)
    assert "Lipa TSh 400,000" in sms[0]["text"]
    mine = await own_status(pay, reg)
    assert mine["status"] == "pending_payment"

    await pay_at_gepg(pay, number, FEE)

    async def confirmed() -> bool:
        return (await own_status(pay, reg))["status"] == "confirmed"

    await wait_until(confirmed, timeout=60, message="confirmed after paying")
    [ticket] = await pay.smtp.wait_for(to(email, "confirmation"), timeout=60)
    assert any(p.get_filename() == "tiketi-ticket.png" for p in ticket.iter_attachments())
    [receipt] = await pay.smtp.wait_for(to(email, "payment_receipt"), timeout=60)
    assert f"{number}-1" in receipt["Subject"]
    paid = await get_bill(pay, bill["id"])
    assert paid["status"] == "paid" and paid["paid_total_tzs"] == FEE
    # The receipt as PDF, for the organiser.
    async with httpx.AsyncClient(base_url=pay.payments.url, timeout=20) as c:
        pdf = await c.get(
            f"/api/v1/bills/{bill['id']}/payments/{paid['payments'][0]['id']}/receipt.pdf",
            headers=pay.admin,
        )
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


async def test_a_partial_payment_notified_three_times_is_applied_once(pay: PayStack) -> None:
    event_id = await new_event(pay)
    reg = await register(pay, event_id)
    bill = await bill_of(pay, event_id)
    await controls(pay, duplicate_notifications=2)
    try:
        await pay_at_gepg(pay, bill["control_number"], 150_000)

        async def recorded() -> dict | None:
            b = await get_bill(pay, bill["id"])
            return b if b["payments"] else None

        partial = await wait_until(recorded, timeout=60, message="the partial payment")
        # Give the two duplicates their time; the total stays one payment's.
        log = await wait_until(
            lambda: pay.payments.logs().count("payment_already_recorded") >= 2 or None,
            timeout=60,
            message="both duplicates answered",
        )
        assert log
        again = await get_bill(pay, bill["id"])
        assert len(again["payments"]) == 1 and again["paid_total_tzs"] == 150_000
        assert again["status"] == "issued" and partial["outstanding_tzs"] == 250_000
        assert (await own_status(pay, reg))["status"] == "pending_payment"
    finally:
        await controls(pay, duplicate_notifications=0)
    await pay_at_gepg(pay, bill["control_number"], 250_000)

    async def confirmed() -> bool:
        return (await own_status(pay, reg))["status"] == "confirmed"

    await wait_until(confirmed, timeout=60, message="confirmed once the rest is paid")


async def test_a_bad_signature_is_refused_with_7303_and_changes_nothing(pay: PayStack) -> None:
    event_id = await new_event(pay)
    reg = await register(pay, event_id)
    bill = await bill_of(pay, event_id)
    gepg_log = pay.gepg.log_path
    await controls(pay, bad_signature=True)
    try:
        await pay_at_gepg(pay, bill["control_number"], FEE)
        await wait_until(
            lambda: "ack 7303" in gepg_log.read_text(), timeout=60, message="a 7303 ack"
        )
        await wait_until(
            lambda: "gepg_callback_refused" in pay.payments.logs(),
            timeout=30,
            message="security log",
        )
        unchanged = await get_bill(pay, bill["id"])
        assert unchanged["payments"] == [] and unchanged["status"] == "issued"
        assert (await own_status(pay, reg))["status"] == "pending_payment"
        line = next(x for x in pay.payments.logs().splitlines() if "gepg_callback_refused" in x)
        assert reg["body"]["email"] not in line and "Payer" not in line
    finally:
        await controls(pay, bad_signature=False)

    # GePG's next retry is signed properly: applied, once.
    async def confirmed() -> bool:
        return (await own_status(pay, reg))["status"] == "confirmed"

    await wait_until(confirmed, timeout=60, message="confirmed by the properly signed retry")
    assert len((await get_bill(pay, bill["id"]))["payments"]) == 1


async def test_an_expired_bill_releases_the_seat_to_the_first_waiting(pay: PayStack) -> None:
    # A bill that lives 20 seconds (payment_days), one seat.
    event_id = await new_event(pay, capacity=1, payment_days=20 / 86400)
    first = await register(pay, event_id)
    second = await register(pay, event_id)
    assert (first["status"], second["status"]) == ("pending_payment", "waitlisted")

    async def cancelled() -> bool:
        return (await own_status(pay, first))["status"] == "cancelled"

    await wait_until(cancelled, timeout=90, message="cancelled unpaid")

    async def promoted() -> bool:
        return (await own_status(pay, second))["status"] == "pending_payment"

    await wait_until(promoted, timeout=60, message="the first waiting holds the seat")
    async with httpx.AsyncClient(base_url=pay.payments.url, timeout=20) as c:
        bills = (
            await c.get("/api/v1/bills", params={"event_id": event_id}, headers=pay.admin)
        ).json()
    assert "expired" in {b["status"] for b in bills}


async def test_the_reconciliation_finds_a_planted_discrepancy(pay: PayStack) -> None:
    event_id = await new_event(pay)
    await register(pay, event_id)
    bill = await bill_of(pay, event_id)
    # GePG has a payment it never notified: the reconciliation must find and record it.
    planted = await pay_at_gepg(pay, bill["control_number"], 100_000, notify=False)
    day = planted["paid_at"]
    from datetime import datetime

    from shared.timeutil import EAT

    local_day = datetime.fromisoformat(day).astimezone(EAT).date().isoformat()
    async with httpx.AsyncClient(base_url=pay.payments.url, timeout=20) as c:
        r = await c.post("/api/v1/reconciliations", json={"day": local_day}, headers=pay.admin)
        assert r.status_code == 202, r.text

        async def completed() -> dict | None:
            recs = (await c.get("/api/v1/reconciliations", headers=pay.admin)).json()
            done = [x for x in recs if x["day"] == local_day and x["status"] == "completed"]
            return done[0] if done else None

        rec = await wait_until(completed, timeout=60, message="the reconciliation")
        kinds = [(d["kind"], d["transaction_id"]) for d in rec["discrepancies"]]
        assert ("unknown_payment", planted["transaction_id"]) in kinds
        metrics = (await c.get("/metrics")).text
    assert 'mkutano_payments_reconciliation_discrepancies{kind="unknown_payment"}' in metrics
    recorded = await get_bill(pay, bill["id"])
    assert [p["source"] for p in recorded["payments"]] == ["reconciliation"]
    assert unique_id()


async def test_a_registration_cancelled_before_paying_cancels_its_bill(pay: PayStack) -> None:
    event_id = await new_event(pay)
    reg = await register(pay, event_id)
    bill = await bill_of(pay, event_id)
    async with httpx.AsyncClient(base_url=pay.registration.url, timeout=20) as c:
        r = await c.post(
            f"/api/v1/registrations/{reg['reference']}/cancel",
            headers={"X-Manage-Token": reg["manage_token"]},
        )
        assert r.status_code == 200, r.text

    async def cancelled() -> bool:
        return (await get_bill(pay, bill["id"]))["status"] == "cancelled"

    await wait_until(cancelled, timeout=60, message="the bill cancelled with its registration")
    async with httpx.AsyncClient(base_url=pay.gepg_url, timeout=20) as c:

        async def told() -> bool:
            at_gepg = (await c.get("/api/v1/bills")).json()
            return any(b["bill_id"] == bill["id"] and b["cancelled"] for b in at_gepg)

        await wait_until(told, timeout=60, message="GePG told of the cancellation")
        refused = await c.post(
            "/api/v1/payments",
            json={"control_number": bill["control_number"], "amount": FEE, "channel": "MOBILE"},
        )
    assert refused.status_code == 409


async def test_the_participant_sees_the_control_number_on_the_self_service_page(
    pay: PayStack,
) -> None:
    import re

    from tests.axe import axe_violations
    from tests.browser import chromium_page

    event_id = await new_event(pay)
    reg = await register(pay, event_id)
    bill = await bill_of(pay, event_id)

    async def noted() -> bool:
        return (await own_status(pay, reg)).get("payment", {}).get("control_number") == bill[
            "control_number"
        ]

    await wait_until(noted, timeout=60, message="registration noted the control number")
    base = pay.registration.url
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:  # no JavaScript
        start = await client.get("/my?lang=en")
        csrf = re.search(r'name="csrf" value="([^"]+)"', start.text).group(1)
        opened = await client.post(
            "/my?lang=en",
            data={"reference": reg["reference"], "token": reg["manage_token"], "csrf": csrf},
        )
        assert opened.status_code == 303, opened.text
        path = opened.headers["location"].split("?")[0]
        page_en = await client.get(f"{path}?lang=en")
        page_sw = await client.get(f"{path}?lang=sw")
    assert bill["control_number"] in page_en.text and "TZS 400,000" in page_en.text
    assert "Awaiting payment" in page_en.text and "Inasubiri malipo" in page_sw.text
    async with chromium_page(width=390, height=844) as page:
        for lang in ("sw", "en"):
            await page.goto(f"{base}{path}?lang={lang}")
            assert await page.locator("#control-number").inner_text() == bill["control_number"]
            assert await axe_violations(page) == [], f"payment on /my ({lang})"
