"""The idempotent consumer on FastStream's in-memory ``TestKafkaBroker``: no server.

What every consumer group of the platform relies on (shared/consumer.py): a record is
handed to its handler once per CloudEvent id, a record that is not a valid CloudEvent or
whose handler keeps failing goes to the dead-letter topic with the reason, and an event
type the group does not handle is acknowledged and ignored. The same behaviours are
proven against the real broker in tests/faults.
"""

from __future__ import annotations

import json

import pytest
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
from pymongo.errors import ConnectionFailure

from shared.consumer import BatchOptions, EventConsumer
from shared.contracts.resolutions import ResolutionCompleted
from shared.envelope import ReceivedEvent, wrap
from shared.settings import KafkaSettings
from tests.unit.fakes.platform import InMemoryProcessedEvents

TOPIC = "resolutions.v1"
DLQ = "test.dlq"


def completed(resolution_id: str = "r-1") -> ResolutionCompleted:
    return ResolutionCompleted.model_validate(
        {
            "resolution_id": resolution_id,
            "conference_id": "egov-2026",
            "number": 1,
            "title_sw": "Azimio",
            "title_en": "Resolution",
            "status": "completed",
            "progress": 100,
            "completed_at": "2026-11-30T09:00:00Z",
            "version": 3,
        }
    )


@pytest.fixture
def setup():
    broker = KafkaBroker()
    applied: list[ReceivedEvent] = []
    failures = {"left": 0}

    async def on_completed(received: ReceivedEvent) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("handler failed")
        applied.append(received)

    consumer = EventConsumer(
        service="unit",
        group_id="unit-group",
        topics=[TOPIC],
        handlers={ResolutionCompleted: on_completed},
        processed=InMemoryProcessedEvents(),  # type: ignore[arg-type]
        dead_letter_topic=DLQ,
        max_attempts=3,
        retry_base_s=0.0,
    )
    consumer.attach(broker, KafkaSettings())
    dead: list[dict[str, str]] = []

    async def raw(message: KafkaMessage) -> bytes:  # the bytes as they are, like the consumer
        return message.body

    @broker.subscriber(DLQ, decoder=raw)
    async def dead_letters(body: bytes, message: KafkaMessage) -> None:
        dead.append(dict(message.headers))

    return broker, consumer, applied, dead, failures


async def publish(broker: KafkaBroker, message) -> None:  # noqa: ANN001
    await broker.publish(
        message.value(), topic=TOPIC, key=message.key.encode(), headers=message.headers()
    )


async def test_a_redelivered_event_is_applied_once(setup) -> None:
    broker, consumer, applied, dead, _ = setup
    message = wrap(completed(), "resolutions")
    async with TestKafkaBroker(broker):
        await publish(broker, message)
        await publish(broker, message)  # the same ce_id again: a redelivery
    assert [r.id for r in applied] == [message.id]
    assert applied[0].event.resolution_id == "r-1"
    assert consumer.stats.duplicates == 1 and dead == []


async def test_a_failing_handler_is_retried_then_dead_lettered_with_the_reason(setup) -> None:
    broker, consumer, applied, dead, failures = setup
    failures["left"] = 10
    message = wrap(completed("r-2"), "resolutions")
    async with TestKafkaBroker(broker):
        await publish(broker, message)
    assert applied == []
    assert len(dead) == 1
    assert dead[0]["dlq_reason"] == "handler_failed" and dead[0]["dlq_attempts"] == "3"
    assert dead[0]["ce_id"] == message.id and dead[0]["dlq_group"] == "unit-group"


async def test_a_handler_that_recovers_within_its_attempts_applies_once(setup) -> None:
    broker, consumer, applied, dead, failures = setup
    failures["left"] = 2
    async with TestKafkaBroker(broker):
        await publish(broker, wrap(completed("r-3"), "resolutions"))
    assert len(applied) == 1 and consumer.stats.retries == 2 and dead == []


async def test_a_record_that_is_not_a_cloudevent_goes_to_the_dead_letter_topic(setup) -> None:
    broker, _, applied, dead, _ = setup
    good = wrap(completed(), "resolutions")
    async with TestKafkaBroker(broker):
        await broker.publish(b"not json", topic=TOPIC, headers=good.headers())
        await broker.publish(json.dumps({"x": 1}).encode(), topic=TOPIC, headers={"a": "b"})
    assert applied == []
    assert [d["dlq_reason"] for d in dead] == ["invalid_payload", "unknown_type"]


# --------------------------------------------------------------------------- batch mode


@pytest.fixture
def batched():
    """A consumer in batch mode (shared.consumer.BatchOptions) with a bulk handler."""
    broker = KafkaBroker()
    applied: list[str] = []
    bulk_calls: list[list[str]] = []
    poison: set[str] = set()

    async def one(received: ReceivedEvent) -> None:
        if received.event.resolution_id in poison:
            raise RuntimeError("cannot apply")
        applied.append(received.event.resolution_id)

    async def bulk(events: list[ReceivedEvent]) -> None:
        bulk_calls.append([r.event.resolution_id for r in events])
        if any(r.event.resolution_id in poison for r in events):
            raise RuntimeError("cannot apply one of them")
        applied.extend(r.event.resolution_id for r in events)

    processed = InMemoryProcessedEvents()
    consumer = EventConsumer(
        service="unit",
        group_id="unit-batch",
        topics=[TOPIC],
        handlers={ResolutionCompleted: one},
        processed=processed,  # type: ignore[arg-type]
        dead_letter_topic=DLQ,
        max_attempts=3,
        retry_base_s=0.0,
        batch=BatchOptions(max_records=50, timeout_ms=10),
        bulk_handlers={ResolutionCompleted: bulk},
    )
    consumer.attach(broker, KafkaSettings())
    dead: list[dict[str, str]] = []

    async def raw(message: KafkaMessage) -> bytes:
        return message.body

    @broker.subscriber(DLQ, decoder=raw)
    async def dead_letters(body: bytes, message: KafkaMessage) -> None:
        dead.append(dict(message.headers))

    return broker, consumer, applied, bulk_calls, poison, dead, processed


async def test_a_batch_is_applied_in_one_bulk_call_in_order_and_each_event_recorded(
    batched,
) -> None:
    broker, consumer, applied, bulk_calls, _, dead, processed = batched
    messages = [wrap(completed(f"r-{i}"), "resolutions") for i in range(5)]
    async with TestKafkaBroker(broker):
        await consumer.handle_batch(_batch(messages))
    assert bulk_calls == [[f"r-{i}" for i in range(5)]]
    assert applied == [f"r-{i}" for i in range(5)] and dead == []
    assert processed.ids == {m.id for m in messages}


async def test_a_batch_skips_what_was_applied_and_applies_a_repeat_within_it_once(
    batched,
) -> None:
    broker, consumer, applied, _, _, _, _ = batched
    first, second = (wrap(completed(f"r-{i}"), "resolutions") for i in range(2))
    async with TestKafkaBroker(broker):
        await consumer.handle_batch(_batch([first]))
        await consumer.handle_batch(_batch([first, second, second]))
    assert applied == ["r-0", "r-1"]
    assert consumer.stats.duplicates == 2


async def test_a_poison_event_in_a_batch_is_dead_lettered_and_the_rest_applied(batched) -> None:
    broker, consumer, applied, _, poison, dead, processed = batched
    poison.add("r-2")
    messages = [wrap(completed(f"r-{i}"), "resolutions") for i in range(4)]
    async with TestKafkaBroker(broker):
        await consumer.handle_batch(_batch([*messages[:2], _not_json(), *messages[2:]]))
    # The bulk call failed; its events were applied one by one, the poison one
    # retried (3 attempts) and dead-lettered, in the batch's order.
    assert applied == ["r-0", "r-1", "r-3"]
    assert [(d["dlq_reason"], d["dlq_attempts"]) for d in dead] == [
        ("invalid_payload", "0"),
        ("handler_failed", "3"),
    ]
    assert dead[1]["ce_id"] == messages[2].id
    assert messages[2].id not in processed.ids and messages[3].id in processed.ids


async def test_a_batch_is_rewound_whole_when_the_database_is_down(batched) -> None:
    broker, consumer, applied, _, _, dead, processed = batched
    messages = [wrap(completed(f"r-{i}"), "resolutions") for i in range(3)]

    async def down(event_ids: list[str]) -> set[str]:
        raise ConnectionFailure("mongo down")

    processed.seen_many = down  # type: ignore[attr-defined]
    batch = _batch(messages)
    async with TestKafkaBroker(broker):
        await consumer.handle_batch(batch)
    assert batch.acked is False and batch.nacked is True
    assert applied == [] and dead == []


async def test_the_batch_subscriber_delivers_published_records(batched) -> None:
    broker, _, applied, _, _, _, _ = batched
    async with TestKafkaBroker(broker):
        for i in range(3):
            await publish(broker, wrap(completed(f"r-{i}"), "resolutions"))
    assert sorted(applied) == ["r-0", "r-1", "r-2"]


class _Record:
    def __init__(self, offset: int, value: bytes, key: bytes | None, headers: dict) -> None:
        self.topic, self.partition, self.offset = TOPIC, 0, offset
        self.value, self.key = value, key
        self.headers = [(k, v.encode()) for k, v in headers.items()]


class _BatchMessage:
    """What FastStream hands a batch subscriber: the records in ``raw_message``."""

    def __init__(self, records: list[_Record]) -> None:
        self.raw_message = tuple(records)
        self.acked = self.nacked = False

    async def ack(self) -> None:
        self.acked = True

    async def nack(self) -> None:
        self.nacked = True


def _not_json() -> tuple[bytes, None, dict[str, str]]:
    return (b"not json", None, wrap(completed("bad"), "resolutions").headers())


def _batch(messages) -> _BatchMessage:  # noqa: ANN001
    records = []
    for offset, m in enumerate(messages):
        if isinstance(m, tuple):
            records.append(_Record(offset, *m))
        else:
            records.append(_Record(offset, m.value(), m.key.encode(), m.headers()))
    return _BatchMessage(records)
