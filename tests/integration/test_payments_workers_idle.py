"""The payments workers against a real MongoDB server while nothing happens: their
queries read the whole bills collection on the embedded server, so an idle service
must scan less and less often (issue 19: idle cost stays flat as the data grows), while
a bill written for submission still goes at once and a bill past its expiry still
expires within the longest gap."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from services.payments import handlers, workers
from services.payments.settings import PaymentsSettings
from services.payments.store import BILLS, SUBMIT, MongoPaymentsStore
from shared.outbox import WriteSignal
from tests.stack import MongoServer, wait_until
from tests.unit.fakes.payments import FakeGateway
from tests.unit.test_payments_handlers import Clock, notice

SCAN_S = 0.1  # the loops' base interval in this test (production: 1 s)


class FindCounter(monitoring.CommandListener):
    """Counts the ``find`` commands on one collection (the workers' scans)."""

    def __init__(self, collection: str) -> None:
        self.collection, self.finds = collection, 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == self.collection:
            self.finds += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def running(mongo: MongoServer) -> AsyncIterator[dict[str, Any]]:
    counter = FindCounter(BILLS)
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True, event_listeners=[counter])
    name = f"mkutano_payments_idle_{secrets.token_hex(4)}"
    signal = WriteSignal()
    store = MongoPaymentsStore(client[name], signal=signal)
    await store.ensure_indexes()
    ctx = handlers.Context(
        store=store,
        gateway=FakeGateway(),
        settings=PaymentsSettings(scan_interval_s=SCAN_S),
        clock=Clock(),
    )
    submitter = workers.Submitter(ctx)
    signal.listen(submitter.hint, work=SUBMIT)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(submitter.run(stop)),
        asyncio.create_task(workers.run_expiry(ctx, stop)),
        asyncio.create_task(workers.run_gepg_cancellations(ctx, stop)),
    ]
    try:
        yield {"ctx": ctx, "counter": counter}
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        await client.drop_database(name)
        await client.close()


async def test_idle_workers_back_off_yet_new_and_expiring_bills_are_handled(running) -> None:
    ctx, counter = running["ctx"], running["counter"]
    # Idle for 3 s. At the base interval (0.1 s) the submitter and the expiry loop would
    # scan ~60 times (the code before issue 19's idle fix did); backing off, ~12.
    await asyncio.sleep(3)  # the quantity under test is the scans made while idle
    idle_finds = counter.finds
    assert 4 <= idle_finds <= 20, idle_finds

    # A bill written now is submitted at once: the write signal wakes the submitter.
    bill = await handlers.open_bill_for_registration(ctx, notice(f"reg-{secrets.token_hex(3)}"))
    await wait_until(lambda: bill.id in ctx.gateway.submitted, timeout=10)

    # Nobody tells the expiry loop: the bill's expiry passes (the clock moves past it)
    # and the loop, however far it backed off, expires it within its longest gap (3 s).
    ctx.clock.now = ctx.clock.now + timedelta(days=8)

    async def expired() -> bool:
        current = await ctx.store.get_bill(bill.id)
        return current is not None and current.status == "expired"

    await wait_until(expired, timeout=20, interval=0.2)
