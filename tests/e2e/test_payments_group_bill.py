"""Issue 14, done when: "an institution's group bill confirms all its nominees when paid",
against the real registration, payments and notification services and the GePG
simulator (the `pay` stack of test_payments_flows: tests/e2e/conftest.py's `pay_stack`, one
for both modules, with its own captures).

The institution's contact person signs in through the emailed link and nominates three
officers into a paid category (each pending_payment, each with their own bill); the
contact person presses "one bill for all unpaid nominees" on the institution page
(registration publishes GroupBillRequested; payments opens the group bill); its control
number reaches the contact person by email and SMS and shows on the institution page; a partial payment leaves all three
pending; paying the rest confirms all three, each with their ticket.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import httpx
import pytest

from tests.e2e.test_institution_nominations import as_csv, upload
from tests.e2e.test_institution_sign_in import (
    ask_for_link,
    form_token,
    link_in,
    sign_in_mail,
    use_link,
)
from tests.e2e.test_notification_flows import api
from tests.e2e.test_payments_flows import (  # noqa: F401  (the module's stack fixture)
    FEE,
    PayStack,
    get_bill,
    new_event,
    pay,
    pay_at_gepg,
    to,
)
from tests.stack import wait_until

pytestmark = pytest.mark.e2e


async def new_institution(stack: PayStack) -> dict[str, Any]:
    code = f"G-{secrets.token_hex(3).upper()}"
    email = f"fedha.{secrets.token_hex(4)}@example.go.tz"
    contact = {"full_name": "Neema Said", "email": email, "phone": "+255713000111"}
    body = {
        "code": code,
        "name_sw": f"Wizara ya Majaribio {code}",
        "name_en": f"Ministry of Trials {code}",
        "kind": "ministry",
        "region": "Dodoma",
        "contacts": [{**contact, "language": "en"}],
    }
    r = await api(stack.registration.url, "POST", "/api/v1/institutions", stack.admin, json=body)
    assert r.status_code == 201, r.text
    return {**r.json(), "email": email}


def three_officers(tag: str) -> list[dict[str, str]]:
    return [
        {
            "full_name": f"Afisa {n} Kimaro",
            "email": f"afisa{n}.{tag}@example.go.tz",
            "phone": f"0713{secrets.randbelow(900000) + 100000}",
            "position": "ICT Officer",
            "category": "ict",
            "language": "en" if n % 2 else "sw",
        }
        for n in (1, 2, 3)
    ]


async def statuses(stack: PayStack, event_id: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=20) as c:
        r = await c.get(f"/api/v1/events/{event_id}/registrations?limit=100", headers=stack.admin)
        assert r.status_code == 200, r.text
    return {item["email"]: item["status"] for item in r.json()["items"]}


async def test_a_group_bill_paid_confirms_all_three_nominees(pay: PayStack) -> None:  # noqa: F811
    event_id = await new_event(pay)
    institution = await new_institution(pay)
    rows = three_officers(secrets.token_hex(3))
    addresses = {r["email"] for r in rows}

    async with httpx.AsyncClient(base_url=pay.registration.url, timeout=30) as client:
        await ask_for_link(client, institution["email"])
        (message,) = await pay.smtp.wait_for(sign_in_mail(institution["email"]), timeout=60)
        assert (await use_link(client, link_in(message, "en"))).status_code == 303
        done = await upload(client, event_id, as_csv(rows), dry_run=False)
        assert done.status_code == 201, done.text
        assert done.text.count('data-status="pending_payment"') == 3
    assert set((await statuses(pay, event_id)).values()) == {"pending_payment"}

    # Each nominee's own bill gets its control number first (the consumer opens them).
    async def three_issued() -> list[dict[str, Any]] | None:
        async with httpx.AsyncClient(base_url=pay.payments.url, timeout=20) as c:
            r = await c.get("/api/v1/bills", params={"event_id": event_id}, headers=pay.admin)
        issued = [b for b in r.json() if b["control_number"]] if r.status_code == 200 else []
        return issued if len(issued) == 3 else None

    singles = await wait_until(three_issued, timeout=90, message="three nominees' bills")

    # The contact person presses "one bill for all unpaid nominees" (no JavaScript).
    async with httpx.AsyncClient(base_url=pay.registration.url, timeout=30) as c:
        c.cookies = client.cookies
        home = await c.get(f"/institution/home?lang=en&event={event_id}")
        assert "One bill for all unpaid nominees" in home.text
        sw = await c.get(f"/institution/home?lang=sw&event={event_id}")
        assert "Bili moja kwa walioteuliwa wote wasiolipiwa" in sw.text
        ask = {"csrf": form_token(home.text), "event": event_id}
        forged = await c.post("/institution/group-bill?lang=en", data={**ask, "csrf": "x"})
        assert forged.status_code == 403
        asked = await c.post("/institution/group-bill?lang=en", data=ask)
        assert asked.status_code == 303, asked.text
        again = await c.post("/institution/group-bill?lang=en", data=ask)  # pressed twice
        assert again.status_code == 303

    async def group_bill() -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=pay.payments.url, timeout=20) as c:
            r = await c.get("/api/v1/bills", params={"event_id": event_id}, headers=pay.admin)
        groups = [b for b in r.json() if len(b["lines"]) > 1] if r.status_code == 200 else []
        return groups if groups else None

    [group] = await wait_until(group_bill, timeout=60, message="the group bill opened")
    assert group["amount_tzs"] == 3 * FEE and group["institution_code"] == institution["code"]
    assert group["payer"]["email"] == institution["email"]

    async def issued() -> dict[str, Any] | None:
        b = await get_bill(pay, group["id"])
        return b if b["control_number"] else None

    group = await wait_until(issued, timeout=60, message="the group bill's control number")
    number = group["control_number"]
    for single in singles:  # replaced by the group bill
        assert (await get_bill(pay, single["id"]))["status"] == "cancelled"

    # The control number reaches the contact person by email, with the whole amount.
    [mail] = await pay.smtp.wait_for(
        lambda m: to(institution["email"], "payment_control_number")(m) and number in m["Subject"],
        timeout=60,
    )
    assert "1,200,000" in mail.get_body(("plain",)).get_content()
    await pay.sms.wait_for(lambda m: number in m["text"], timeout=60)

    # ... and shows on the institution page (without JavaScript).
    async def page_shows() -> str | None:
        async with httpx.AsyncClient(base_url=pay.registration.url, timeout=30) as c2:
            c2.cookies = client.cookies
            home = await c2.get(f"/institution/home?lang=en&event={event_id}")
        return home.text if 'id="group-bill"' in home.text and number in home.text else None

    home = await wait_until(page_shows, timeout=60, message="the group bill on the page")
    section = re.search(r'<section id="group-bill".*?</section>', home, re.S).group(0)
    assert "TZS 1,200,000" in section and "Not fully paid" in section
    assert "One bill for all unpaid nominees" not in home  # asked already: no button
    from tests.axe import axe_violations
    from tests.browser import chromium_page

    base = pay.registration.url
    async with chromium_page(width=390, height=844) as page:
        jar = [{"name": k, "value": v, "url": base} for k, v in client.cookies.items()]
        await page.context.add_cookies(jar)
        for lang in ("sw", "en"):
            await page.goto(f"{base}/institution/home?lang={lang}&event={event_id}")
            assert await page.locator("#group-control-number").inner_text() == number
            assert await axe_violations(page) == [], f"group bill ({lang})"
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"group bill ({lang}): {width} px wide"

    # A partial payment: recorded, all three still pending.
    await pay_at_gepg(pay, number, 500_000)

    async def partial() -> bool:
        return (await get_bill(pay, group["id"]))["paid_total_tzs"] == 500_000

    await wait_until(partial, timeout=60, message="the partial payment recorded")
    assert set((await statuses(pay, event_id)).values()) == {"pending_payment"}

    # The rest: all three confirmed, each with their confirmation and ticket.
    await pay_at_gepg(pay, number, 3 * FEE - 500_000)

    async def all_confirmed() -> bool:
        return set((await statuses(pay, event_id)).values()) == {"confirmed"}

    await wait_until(all_confirmed, timeout=90, message="all three confirmed")
    tickets = await pay.smtp.wait_for(
        lambda m: str(m["To"]).lower() in addresses and m["X-Mkutano-Template"] == "confirmation",
        count=3,
        timeout=90,
    )
    assert {str(m["To"]).lower() for m in tickets} == addresses
    for m in tickets:
        assert any(p.get_filename() == "tiketi-ticket.png" for p in m.iter_attachments())
    paid = await get_bill(pay, group["id"])
    assert paid["status"] == "paid" and paid["paid_total_tzs"] == 3 * FEE

    # Nobody left to pay for: the button is gone, and a stale form gets a clear answer.
    async with httpx.AsyncClient(base_url=pay.registration.url, timeout=30) as c:
        c.cookies = client.cookies
        home = await c.get(f"/institution/home?lang=en&event={event_id}")
        assert "One bill for all unpaid nominees" not in home.text
        assert home.text.count('data-status="confirmed"') == 3
        stale = await c.post(
            "/institution/group-bill?lang=en",
            data={"csrf": form_token(home.text), "event": event_id},
        )
    assert stale.status_code == 409
    assert "None of your nominees for this event awaits payment." in stale.text

    # PDPA: the contact person is erased at registration; the group bill keeps its
    # amounts and payments but no longer holds their contact (payments' consumer).
    (contact,) = institution["contacts"]
    erased = await api(
        pay.registration.url,
        "DELETE",
        f"/api/v1/institutions/{institution['code']}/contacts/{contact['id']}",
        pay.admin,
    )
    assert erased.status_code == 204, erased.text

    async def payer_gone() -> dict[str, Any] | None:
        b = await get_bill(pay, group["id"])
        return b if b["payer"] is None else None

    kept = await wait_until(payer_gone, timeout=60, message="the payer erased from the bill")
    assert kept["status"] == "paid" and kept["paid_total_tzs"] == 3 * FEE
    assert institution["email"] not in json.dumps(kept)
