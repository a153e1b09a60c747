"""The payments store and use cases against the session's real MongoDB (in process, the
GePG gateway faked): one bill per registration, the queries the workers and consumers
rely on, stale writes refused, gapless invoice numbers under concurrency, erasure."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pymongo import AsyncMongoClient

from services.payments import handlers
from services.payments.domain import invoice_number
from services.payments.ports import ControlNumberCallback, PaymentCallback
from services.payments.settings import PaymentsSettings
from services.payments.store import MongoPaymentsStore
from tests.stack import MongoServer
from tests.unit.fakes.payments import FakeGateway
from tests.unit.test_payments_domain import T0, reported
from tests.unit.test_payments_handlers import Clock, notice


@pytest.fixture
async def ctx(mongo: MongoServer) -> AsyncIterator[handlers.Context]:
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True)
    name = f"mkutano_payments_it_{secrets.token_hex(4)}"
    store = MongoPaymentsStore(client[name])
    await store.ensure_indexes()
    try:
        yield handlers.Context(
            store=store, gateway=FakeGateway(), settings=PaymentsSettings(), clock=Clock()
        )
    finally:
        await client.drop_database(name)
        await client.close()


async def test_one_bill_per_registration_and_the_worker_queries(ctx) -> None:
    bill = await handlers.open_bill_for_registration(ctx, notice("reg-1"))
    again = await handlers.open_bill_for_registration(ctx, notice("reg-1"))
    assert bill.id == again.id
    store = ctx.store
    assert await store.bills_to_submit(now=T0.timestamp(), limit=10) == [bill.id]
    assert [b.id for b in await store.bills_of_registration("reg-1")] == [bill.id]
    assert await store.bills_of_registration("reg-x") == []
    await handlers.submit_bill(ctx, bill.id)
    assert await store.bills_to_submit(now=T0.timestamp(), limit=10) == []
    await handlers.apply_control_number(ctx, ControlNumberCallback(bill.id, "991000000001", "7101"))
    assert (await store.bill_by_control_number("991000000001")).id == bill.id
    assert await store.open_bills_due(until=T0 + timedelta(days=8), limit=10) == [bill.id]
    assert await store.open_bills_due(until=T0 + timedelta(days=1), limit=10) == []
    # A stale copy cannot overwrite a newer write.
    stale = await store.get_bill(bill.id)
    await handlers.apply_payment(ctx, PaymentCallback(reported("T1", 100_000)))
    stale.reminded = True
    assert not await store.save_bill(stale)
    known = await store.payments_on(T0.date())
    assert [k.payment.transaction_id for k in known] == ["T1"]


async def test_cancel_and_erase_find_the_registrations_bill(ctx) -> None:
    bill = await handlers.open_bill_for_registration(ctx, notice("reg-2"))
    assert await handlers.cancel_bills_of_registration(ctx, "reg-2", "registration_cancelled") == 1
    assert (await ctx.store.get_bill(bill.id)).status == "cancelled"
    assert await handlers.erase_personal_data(ctx, "reg-2") == 1
    erased = await ctx.store.get_bill(bill.id)
    assert erased.payer is None and erased.lines[0].full_name is None
    assert erased.amount_tzs == 400_000  # the books stay


async def test_invoice_numbers_have_no_gaps_under_concurrency(ctx) -> None:
    ids = []
    for i in range(8):
        ids.append((await handlers.open_bill_for_registration(ctx, notice(f"reg-i{i}"))).id)
    results = await asyncio.gather(*(handlers.invoice_pdf(ctx, i, "sw") for i in ids))
    numbers = sorted(b.invoice_number for b, _ in results)
    assert numbers == [invoice_number(2026, n) for n in range(1, 9)]
    # Asked again: the same number, none taken.
    bill, _ = await handlers.invoice_pdf(ctx, ids[0], "en")
    assert bill.invoice_number in numbers
    assert (await ctx.store.next_invoice_number(2026, "another")) == 9
