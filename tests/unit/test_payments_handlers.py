"""Payments use cases on the in-memory store and gateway (fixed clock)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from types import SimpleNamespace

import pytest

from services.payments import handlers
from services.payments.domain import bill_id_for
from services.payments.ports import (
    CallbackRefused,
    ControlNumberCallback,
    PaymentCallback,
    ReconciliationCallback,
)
from services.payments.settings import PaymentsSettings
from shared.contracts.payments import BillCreated, BillPaid, ReconciliationCompleted
from shared.contracts.registration_notices import ParticipantRegisteredNotice
from tests.unit.fakes.payments import FakeGateway, FakePaymentsStore
from tests.unit.test_payments_domain import T0, event_details, payer, reported

pytestmark = pytest.mark.asyncio


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def ctx():
    async def no_sleep(_s: float) -> None:
        return None

    return handlers.Context(
        store=FakePaymentsStore(),
        gateway=FakeGateway(),
        settings=PaymentsSettings(),
        clock=Clock(),
        sleep=no_sleep,
    )


def notice(
    registration_id: str = "reg-1", status: str = "pending_payment", amount: int | None = 400_000
):
    return ParticipantRegisteredNotice(
        registration_id=registration_id,
        reference="MK-1",
        event=event_details(),
        participant=payer(),
        status="pending_payment" if status == "pending_payment" else "confirmed",
        cadre="ict",
        amount_due_tzs=amount,
        payment_due_by=T0 + timedelta(days=7),
    )


async def test_a_pending_payment_registration_gets_one_bill_however_often_delivered(ctx):
    first = await handlers.open_bill_for_registration(ctx, notice())
    again = await handlers.open_bill_for_registration(ctx, notice())
    assert first is not None and again is not None and first.id == again.id
    assert len(ctx.store.bills) == 1
    assert [type(e) for e in ctx.store.events] == [BillCreated]
    assert (
        await handlers.open_bill_for_registration(ctx, notice("reg-2", status="confirmed")) is None
    )


async def test_gepg_down_backs_off_then_the_bill_is_submitted(ctx):
    bill = await handlers.open_bill_for_registration(ctx, notice())
    ctx.gateway.answers = ["unreachable:ConnectError", "unreachable:ConnectError", "7101"]
    assert await handlers.submit_bill(ctx, bill.id) == "unreachable:ConnectError"
    assert await handlers.submit_bill(ctx, bill.id) is None  # not due yet: backing off
    ctx.clock.now += timedelta(seconds=3)
    await handlers.submit_bill(ctx, bill.id)
    ctx.clock.now += timedelta(seconds=10)
    assert await handlers.submit_bill(ctx, bill.id) == "7101"
    stored = ctx.store.bills[bill.id]
    assert stored.submit_attempts == 3 and stored.last_error is None


async def test_callbacks_are_applied_once_and_a_bad_signature_changes_nothing(ctx):
    bill = await handlers.open_bill_for_registration(ctx, notice())
    gw = ctx.gateway
    gw.callbacks[b"cn"] = ControlNumberCallback(bill.id, "991000000001", "7101")
    gw.callbacks[b"pay1"] = PaymentCallback(reported("T1", 150_000))
    gw.callbacks[b"pay2"] = PaymentCallback(reported("T2", 250_000))
    gw.callbacks[b"forged"] = CallbackRefused("7303", "signature does not verify", "gepgPmtSpInfo")
    assert await handlers.receive_callback(ctx, b"cn") == b"ack:7101"
    assert await handlers.receive_callback(ctx, b"cn") == b"ack:7101"
    before = list(ctx.store.events)
    assert await handlers.receive_callback(ctx, b"forged") == b"ack:7303"
    assert ctx.store.events == before
    assert await handlers.receive_callback(ctx, b"pay1") == b"ack:7101"
    assert await handlers.receive_callback(ctx, b"pay1") == b"ack:7101"  # GePG's retry
    stored = ctx.store.bills[bill.id]
    assert stored.status == "issued" and stored.paid_total_tzs == 150_000
    await handlers.receive_callback(ctx, b"pay2")
    assert ctx.store.bills[bill.id].status == "paid"
    assert sum(isinstance(e, BillPaid) for e in ctx.store.events) == 1


async def test_expiry_and_cancellation_of_a_registration(ctx):
    bill = await handlers.open_bill_for_registration(ctx, notice())
    await handlers.apply_control_number(ctx, ControlNumberCallback(bill.id, "99", "7101"))
    other = await handlers.open_bill_for_registration(ctx, notice("reg-2"))
    assert await handlers.cancel_bills_of_registration(ctx, "reg-2", "registration_cancelled") == 1
    assert await handlers.cancel_at_gepg(ctx) == 0 or other.id in ctx.gateway.cancelled
    ctx.clock.now = T0 + timedelta(days=8)
    assert await handlers.expire_and_remind(ctx) == 1
    assert ctx.store.bills[bill.id].status == "expired"


async def test_reconciliation_records_an_unknown_payment_once_and_flags_the_rest(ctx):
    bill = await handlers.open_bill_for_registration(ctx, notice())
    await handlers.apply_control_number(ctx, ControlNumberCallback(bill.id, "991000000001", "7101"))
    await handlers.apply_payment(ctx, PaymentCallback(reported("T1", 100_000)))
    day = date(2026, 12, 1)
    rec = await handlers.request_reconciliation(ctx, day)
    seen = []
    ctx.on_reconciled = seen.append
    report = ReconciliationCallback(rec.request_id, "7101", [reported("T2", 50_000)])
    await handlers.apply_reconciliation(ctx, report)
    await handlers.apply_reconciliation(ctx, report)  # re-sent: compared once
    stored = ctx.store.bills[bill.id]
    assert stored.paid_total_tzs == 150_000
    assert [p.source for p in stored.payments] == ["callback", "reconciliation"]
    done = ctx.store.recs[day.isoformat()]
    assert sorted(d.kind for d in done.discrepancies) == ["missing_at_gepg", "unknown_payment"]
    assert sum(isinstance(e, ReconciliationCompleted) for e in ctx.store.events) == 1
    assert len(seen) == 1


async def test_invoice_numbers_are_sequential_without_gaps(ctx):
    a = await handlers.open_bill_for_registration(ctx, notice("reg-1"))
    b = await handlers.open_bill_for_registration(ctx, notice("reg-2"))
    bill_a, pdf = await handlers.invoice_pdf(ctx, a.id, "sw")
    assert pdf.startswith(b"%PDF")
    bill_a2, _ = await handlers.invoice_pdf(ctx, a.id, "en")
    bill_b, _ = await handlers.invoice_pdf(ctx, b.id, "en")
    assert (bill_a.invoice_number, bill_a2.invoice_number, bill_b.invoice_number) == (
        "PF-2026-000001", "PF-2026-000001", "PF-2026-000002",
    )  # fmt: skip
    assert bill_id_for("reg-1") == a.id


async def test_totals_for_organisers(ctx):
    bill = await handlers.open_bill_for_registration(ctx, notice())
    await handlers.apply_control_number(ctx, ControlNumberCallback(bill.id, "99", "7101"))
    await handlers.apply_payment(ctx, PaymentCallback(reported("T1", 100_000)))
    summary = handlers.totals(await handlers.list_bills(ctx, event_id="ev-1"))
    assert summary["collected_tzs"] == 100_000 and summary["outstanding_tzs"] == 300_000
    assert SimpleNamespace(**summary).by_status == {"issued": 1}


async def test_a_group_bill_replaces_the_nominees_bills_and_pays_for_all(ctx):
    for rid in ("n1", "n2", "n3"):
        n = notice(rid).model_copy(update={"institution_code": "EGA"})
        await handlers.open_bill_for_registration(ctx, n)
    group = await handlers.open_group_bill(ctx, "ev-1", "EGA", payer())
    assert group.amount_tzs == 3 * 400_000 and sorted(group.registration_ids) == ["n1", "n2", "n3"]
    assert (await handlers.open_group_bill(ctx, "ev-1", "EGA", payer())).id == group.id
    singles = [b for b in ctx.store.bills.values() if len(b.lines) == 1]
    assert {b.status for b in singles} == {"cancelled"}
    await handlers.apply_control_number(ctx, ControlNumberCallback(group.id, "99777", "7101"))
    paid = reported("G1", 1_200_000)
    await handlers.apply_payment(ctx, PaymentCallback(replace(paid, bill_id=group.id)))
    [bill_paid] = [e for e in ctx.store.events if isinstance(e, BillPaid)]
    assert sorted(bill_paid.registration_ids) == ["n1", "n2", "n3"]


async def test_a_group_bill_requested_notice_opens_it_once_and_nothing_left_is_dropped(ctx):
    from datetime import UTC, datetime

    from shared.contracts.registration_notices import GroupBillRequested

    for rid in ("n1", "n2"):
        await handlers.open_bill_for_registration(
            ctx, notice(rid).model_copy(update={"institution_code": "EGA"})
        )
    asked = GroupBillRequested(
        institution_code="EGA",
        event_id="ev-1",
        registration_ids=["n1", "n2"],
        payer=payer(),
        requested_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    group = await handlers.group_bill_requested(ctx, asked)
    assert group is not None and group.amount_tzs == 2 * 400_000
    again = await handlers.group_bill_requested(ctx, asked)  # re-delivered / pressed twice
    assert again is not None and again.id == group.id
    assert len([b for b in ctx.store.bills.values() if len(b.lines) > 1]) == 1
    other = asked.model_copy(update={"institution_code": "NONE"})
    assert await handlers.group_bill_requested(ctx, other) is None  # logged, not retried


async def test_an_erased_contact_person_leaves_the_group_bills_and_nothing_else(ctx):
    contact = payer().model_copy(update={"email": "Mratibu@ega.go.tz"})
    for rid in ("n1", "n2"):
        await handlers.open_bill_for_registration(
            ctx, notice(rid).model_copy(update={"institution_code": "EGA"})
        )
    group = await handlers.open_group_bill(ctx, "ev-1", "EGA", contact)
    await handlers.open_bill_for_registration(
        ctx, notice("n3").model_copy(update={"institution_code": "EGA"})
    )
    # Another institution's contact, and the wrong institution, erase nothing.
    assert await handlers.erase_institution_contact(ctx, "EGA", "other@ega.go.tz") == 0
    assert await handlers.erase_institution_contact(ctx, "TRA", "mratibu@ega.go.tz") == 0
    assert await handlers.erase_institution_contact(ctx, "EGA", "mratibu@ega.go.tz") == 1
    erased = await ctx.store.get_bill(group.id)
    assert erased.payer is None
    assert erased.amount_tzs == 2 * 400_000 and [ln.full_name for ln in erased.lines] == [
        ln.full_name for ln in group.lines
    ]
    # The nominee's own bill keeps its payer (the nominee, not the contact person).
    own = await ctx.store.get_bill(bill_id_for("n3"))
    assert own.payer is not None
    # Re-delivered: nothing left to erase; no message goes to the erased address.
    assert await handlers.erase_institution_contact(ctx, "EGA", "mratibu@ega.go.tz") == 0
    sent = len(ctx.store.events)
    await handlers.apply_control_number(ctx, ControlNumberCallback(group.id, "99778", "7101"))
    assert not [e for e in ctx.store.events[sent:] if getattr(e, "payer", None) is not None]
