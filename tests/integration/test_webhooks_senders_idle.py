"""The webhook senders against a real MongoDB server while nothing happens: the
safety-net scan reads the whole delivery log on the embedded server, so idle it backs
off far (issue 19: idle cost stays flat as the log grows), yet a delivery no hint names
(written by another instance) is still sent within the longest gap."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pymongo import AsyncMongoClient

from services.webhooks import handlers
from services.webhooks.adapters import SecretsCipher
from services.webhooks.ports import DELIVERIES, PostOutcome
from services.webhooks.settings import WebhooksSettings
from services.webhooks.store import WebhooksStore
from services.webhooks.workers import Dispatcher
from shared.outbox import WriteSignal
from tests.integration.test_payments_workers_idle import FindCounter
from tests.stack import MongoServer, wait_until
from tests.unit.fakes.webhooks import FakeMailer, FakeResolver
from tests.unit.test_webhooks_handlers import received, spec

URL = "https://tsms.example.go.tz/hook"
SCAN_S = 0.1  # the scan's base interval in this test (production: 1 s)


class Receiver:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostOutcome:
        self.ids.append(headers["webhook-id"])
        return PostOutcome(200, 1)


def context(store: WebhooksStore, receiver: Receiver) -> handlers.Context:
    return handlers.Context(
        store=store,
        settings=WebhooksSettings(senders=2, scan_interval_s=SCAN_S),
        transport=receiver,
        resolver=FakeResolver({"tsms.example.go.tz": ["196.192.72.11"]}),
        mailer=FakeMailer(),
        clock=lambda: datetime.now(UTC),
    )


@pytest.fixture
async def running(mongo: MongoServer) -> AsyncIterator[dict[str, Any]]:
    counter = FindCounter(DELIVERIES)
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True, event_listeners=[counter])
    db = client[f"webhooks_idle_{secrets.token_hex(4)}"]
    cipher = SecretsCipher(Fernet.generate_key())
    store = WebhooksStore(db, signal=WriteSignal(), cipher=cipher)
    await store.ensure_indexes()
    receiver = Receiver()
    ctx = context(store, receiver)
    dispatcher = Dispatcher(ctx)
    store.signal.listen(dispatcher.hint)
    # "Another instance": the same database, a write signal nobody here listens to.
    other = context(WebhooksStore(db, signal=WriteSignal(), cipher=cipher), receiver)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        yield {"ctx": ctx, "other": other, "counter": counter, "receiver": receiver}
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await client.drop_database(db.name)
        await client.close()


async def test_idle_scans_back_off_and_another_instances_delivery_still_goes(running) -> None:
    counter, receiver, other = running["counter"], running["receiver"], running["other"]
    await handlers.create_subscription(other, spec(url=URL), by="admin")
    # Idle for 6 s. Backing off only to 4× (before issue 19's idle fix) the scan (two
    # queries) ran ~16 times; backing off to 30× (0.1 s → 3 s), ~6.
    await asyncio.sleep(6)  # the quantity under test is the scans made while idle
    idle_finds = counter.finds
    assert 2 <= idle_finds <= 16, idle_finds

    # Recorded through the other instance's store: no hint reaches these senders; the
    # scan, however far it backed off, finds it within its longest gap (3 s here).
    await handlers.record_event(other, received(event_id="ce-idle"))
    await wait_until(lambda: len(receiver.ids) == 1, timeout=20, interval=0.1)
