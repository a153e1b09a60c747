"""The outbox relay against a real MongoDB server: hinted writes go at once, a leftover
that no hint names (another process's, a crash's) is still found by the scan, and the
scan, which reads the whole collection on the embedded server, runs less often while it
finds nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from shared.contracts.registration import EventDetails, EventPublished
from shared.envelope import OutboxMessage, wrap
from shared.outbox import OutboxRelay, WriteSignal, insert, new_document
from tests.stack import MongoServer, unique_suffix, wait_until


class FindCounter(monitoring.CommandListener):
    """Counts the ``find`` commands on one collection (the relay's scans)."""

    def __init__(self, collection: str) -> None:
        self.collection, self.finds = collection, 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == self.collection:
            self.finds += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def event_message() -> OutboxMessage:
    now = datetime.now(UTC)
    details = EventDetails(
        event_id=f"ev-{uuid.uuid4().hex[:8]}",
        code="RELAY",
        title_sw="Semina",
        title_en="Seminar",
        venue="AICC",
        city="Arusha",
        starts_at=now + timedelta(days=30),
        ends_at=now + timedelta(days=31),
    )
    event = EventPublished(event_id=details.event_id, event=details, capacity=10, state="published")
    return wrap(event, "registration")


@pytest.fixture
async def relay_env(mongo: MongoServer) -> AsyncIterator[dict[str, Any]]:
    counter = FindCounter("events")
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, event_listeners=[counter])
    db = client[f"mkutano_relay{unique_suffix()}"]
    published: list[str] = []

    async def publish(message: OutboxMessage) -> None:
        published.append(message.id)

    relay = OutboxRelay(
        db, ["events"], publish, poll_interval_s=0.05, scan_interval_s=0.1, max_scan_interval_s=0.8
    )
    signal = WriteSignal()
    signal.listen(relay.hint)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield {"db": db, "published": published, "counter": counter, "signal": signal}
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await client.drop_database(db.name)
        await client.close()


async def test_idle_scans_back_off_and_a_leftover_is_still_published(relay_env) -> None:
    db, published, counter = relay_env["db"], relay_env["published"], relay_env["counter"]
    # Idle for 3 s: at the base interval (0.1 s) that would be ~30 scans.
    await asyncio.sleep(3)  # the quantity under test is the scans made while idle
    assert 3 <= counter.finds <= 10, counter.finds

    # Written by "another process": no hint; the scan must find it within its longest gap.
    leftover = event_message()
    await db.events.insert_one(new_document({"_id": "left-1"}, [leftover]))
    await wait_until(lambda: leftover.id in published, timeout=3)

    # A hinted write goes at once, whatever the scan interval.
    hinted = event_message()
    await insert(db.events, new_document({"_id": "hinted-1"}, [hinted]), signal=relay_env["signal"])
    await wait_until(lambda: hinted.id in published, timeout=0.5, interval=0.01)
    assert published.count(leftover.id) == published.count(hinted.id) == 1
