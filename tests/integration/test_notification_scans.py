"""Notification's senders against the real (embedded) MongoDB server: the safety-net
scan reads the whole delivery collection there, so however many senders find it due at
once, one of them runs it and the others wait for the next notification (the
dispatcher's ``_scanning``).

Eight senders run side by side with the scan due every 50 ms; every ``find`` on the
notifications collection is watched as it starts and ends.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from services.notification import handlers
from services.notification.dispatcher import Dispatcher
from services.notification.ports import NOTIFICATIONS
from services.notification.settings import NotificationSettings
from services.notification.store import MongoNotificationStore
from shared.metrics import Metrics
from shared.outbox import WriteSignal
from shared.waiting import ScanSchedule
from tests.stack import MongoServer, wait_until
from tests.unit.fakes.notification import FakeEmail

SENDERS = 8
SCAN_S = 0.05
SCANS = 15  # the window: this many scans
# Delivered notifications: not due, yet each scan reads past them on the embedded server.
SENT = 3000


class Finds(monitoring.CommandListener):
    """The ``find`` commands on one collection: how many, and most at once."""

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self.started_ids: set[int] = set()
        self.count = self.most_at_once = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == self.collection:
            self.started_ids.add(event.request_id)
            self.count += 1
            self.most_at_once = max(self.most_at_once, len(self.started_ids))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.started_ids.discard(event.request_id)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.started_ids.discard(event.request_id)


class NoWait:
    async def acquire(self) -> None:
        return None


@pytest.fixture
async def senders(mongo: MongoServer) -> AsyncIterator[dict[str, Any]]:
    finds = Finds(NOTIFICATIONS)
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True, event_listeners=[finds])
    db = client[f"mkutano_notification_scans_{secrets.token_hex(4)}"]
    store = MongoNotificationStore(db, signal=WriteSignal())
    await store.ensure_indexes()
    await db[NOTIFICATIONS].insert_many(
        [{"_id": f"n-{i}", "status": "sent", "channel": "email"} for i in range(SENT)]
    )
    ctx = handlers.Context(
        store=store,
        settings=NotificationSettings(senders=SENDERS, dispatcher_poll_s=0.01),
        email=FakeEmail(),
        sms=None,
        metrics=Metrics("tests"),
    )
    dispatcher = Dispatcher(
        ctx,
        store.signal,
        limits={"email": NoWait(), "sms": NoWait()},
        scans=ScanSchedule(SCAN_S, SCAN_S),  # due again 50 ms after each, found or not
    )
    finds.count = finds.most_at_once = 0
    try:
        yield {"dispatcher": dispatcher, "finds": finds}
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_eight_senders_run_one_scan_at_a_time(senders) -> None:
    dispatcher: Dispatcher = senders["dispatcher"]
    finds: Finds = senders["finds"]
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await wait_until(
            lambda: dispatcher.scans >= SCANS,
            timeout=20.0,
            message=lambda: f"{dispatcher.scans} scans",
        )
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert not running.exception()
    # Each scan is one find, and no two ran at once, though all eight senders polled
    # every 10 ms and found the scan due.
    assert finds.most_at_once == 1, f"{finds.most_at_once} scans at once"
    assert finds.count == dispatcher.scans >= SCANS
