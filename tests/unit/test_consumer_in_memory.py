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

from shared.consumer import EventConsumer
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
