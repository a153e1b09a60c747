"""Payments' consumer in batches against the real (embedded) MongoDB server: most
records of its streams need nothing of payments (a free registration's notice), so what
they cost is their idempotency record, and that is read and written once per batch.

The consumer is the one the payments runtime wires from its settings
(``PAYMENTS_CONSUMER_BATCH_MAX_RECORDS``), with its own handlers and store; each
``handle_batch`` call is one poll of the subscriber (its records, up to the batch size).
Every MongoDB command the payments client sends is counted.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

import shared.runtime
from services.payments.app import create_runtime
from services.payments.settings import PaymentsSettings
from shared.envelope import wrap
from tests.stack import MongoServer
from tests.unit.fakes.payments import FakeGateway
from tests.unit.test_payments_handlers import notice

N = 50


class Commands(monitoring.CommandListener):
    """Every command sent, as (name, collection)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append((event.command_name, event.command.get(event.command_name)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class Poll:
    """One poll's records, as FastStream hands a batch subscriber its message."""

    def __init__(self, records: list[Any]) -> None:
        self.raw_message = tuple(records)
        self.acks = 0

    async def ack(self) -> None:
        self.acks += 1

    async def nack(self) -> None:
        raise AssertionError("the batch was rewound")


def free_notices(n: int) -> list[Any]:
    """Kafka records of ``n`` free registrations' notices (confirmed, nothing due)."""
    records = []
    for i in range(n):
        message = wrap(notice(f"reg-free-{i}", status="confirmed", amount=None), "registration")
        records.append(
            SimpleNamespace(
                topic=message.topic,
                partition=0,
                offset=i,
                key=message.key.encode(),
                value=message.value(),
                headers=[(k, v.encode()) for k, v in message.headers().items()],
            )
        )
    return records


@pytest.fixture
async def payments(
    mongo: MongoServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[int], Any]]:
    """A payments runtime on the test server whose consumer takes ``size`` records per
    batch, and the commands its MongoDB client sends."""
    monkeypatch.setenv("MKUTANO_ENV", "test")
    made: list[Any] = []

    def build(size: int) -> Any:
        commands = Commands()

        def counted(settings: Any, name: str) -> AsyncMongoClient:
            return AsyncMongoClient(settings.mongo_url, tz_aware=True, event_listeners=[commands])

        monkeypatch.setattr(shared.runtime, "connect_mongo", counted)
        settings = PaymentsSettings(
            mongo_url=mongo.url,
            mongo_db=f"mkutano_payments_batch_{secrets.token_hex(4)}",
            consumer_batch_max_records=size,
        )
        runtime = create_runtime(settings, gateway=FakeGateway())
        made.append(runtime)
        return SimpleNamespace(runtime=runtime, commands=commands)

    yield build
    for runtime in made:
        await runtime.mongo.drop_database(runtime.settings.mongo_db)
        await runtime.mongo.close()


async def consume(consumer: Any, records: list[Any]) -> list[Poll]:
    """Hand the consumer its records a poll at a time, as many per poll as its batches
    hold."""
    size = consumer.batch.max_records
    polls = [Poll(records[i : i + size]) for i in range(0, len(records), size)]
    for poll in polls:
        await consumer.handle_batch(poll)
    return polls


async def test_free_notices_cost_one_idempotency_read_and_write_per_batch(payments) -> None:
    env = payments(200)  # the default batch size
    (consumer,) = env.runtime.consumers
    db = env.runtime.db
    records = free_notices(N)
    env.commands.sent.clear()
    polls = await consume(consumer, records)
    sent = list(env.commands.sent)
    assert [p.acks for p in polls] == [1]  # one poll, its offsets committed once
    # One read of which were applied already, one write of the batch's ids; nothing else.
    assert sent == [("find", "processed_events"), ("insert", "processed_events")]
    # What a user of payments would see: every notice taken, none billed.
    assert await db["processed_events"].count_documents({}) == N
    assert await db["bills"].count_documents({}) == 0

    # The same batch delivered again (a rebalance, a replay): one read, nothing applied.
    env.commands.sent.clear()
    await consume(consumer, records)
    assert env.commands.sent == [("find", "processed_events")]
    assert consumer.stats.duplicates == N


async def test_one_record_a_poll_costs_a_round_trip_pair_per_record(payments) -> None:
    """What the batches spare: with a batch size of 1, each record pays its own
    idempotency read and write (the count the test above rules out)."""
    env = payments(1)
    (consumer,) = env.runtime.consumers
    env.commands.sent.clear()
    await consume(consumer, free_notices(N))
    assert len(env.commands.sent) == 2 * N, env.commands.sent[:4]
    assert await env.runtime.db["processed_events"].count_documents({}) == N
