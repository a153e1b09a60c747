"""Fault 1: the Kafka broker is down while participants register."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import pytest
from pymongo import AsyncMongoClient

from tests.faults.support import (
    ready_status,
    references_of,
    register_many,
    wait_all_delivered,
)
from tests.helpers import create_event
from tests.stack import wait_until

pytestmark = pytest.mark.e2e

REGISTRATIONS = 200


async def test_registrations_during_broker_outage_are_kept_and_confirmed_once(
    fault_stack, reliability
) -> None:
    """Broker killed while 200 registrations are posted"""
    stack = fault_stack
    registration = await stack.start("registration")
    notification = await stack.start("notification")
    event = await create_event(registration.url, stack.admin_headers, capacity=REGISTRATIONS + 50)

    stack.kafka.kill()
    reliability.record(
        issue=1, fault=f"Kafka SIGKILL during {REGISTRATIONS} POSTs", messages=REGISTRATIONS
    )
    # Readiness reflects the broker: not ready while it is gone.
    await wait_until(
        lambda: _is(ready_status(registration.url), 503),
        timeout=10,
        message="registration did not report not-ready with Kafka down",
    )

    answers = await register_many(registration.url, event["id"], REGISTRATIONS, concurrency=20)
    statuses = [a["status"] for a in answers]
    assert statuses.count(201) == REGISTRATIONS, sorted(set(map(str, statuses)))
    references = references_of(answers)
    reliability.record(accepted=len(references))

    # Their events wait in the outbox, inside each registration's document.
    db = AsyncMongoClient(stack.mongo.url)[registration.env["REGISTRATION_MONGO_DB"]]
    try:
        pending = await db.registrations.count_documents(
            {"event_id": event["id"], "outbox_pending": True}
        )
    finally:
        await db.client.close()
    assert pending == REGISTRATIONS
    assert stack.smtp.messages() == []

    await asyncio.sleep(1.0)  # the outage lasts a little beyond the burst
    await stack.kafka.restart()
    back = time.monotonic()
    await stack.smtp.wait_for(timeout=30)
    first = time.monotonic() - back

    delivery = await wait_all_delivered(stack.smtp, references, timeout=90, settle_s=2.0)
    drained = time.monotonic() - back
    reliability.record(
        delivered=delivery.delivered,
        lost=delivery.lost,
        duplicated=delivery.duplicated,
        recovery_s=drained,
        note=f"first confirmation {first:.1f} s after the broker was back, the last "
        f"{drained:.1f} s after (the senders' throughput on this machine)",
    )
    reliability.record(
        note=f"all {REGISTRATIONS} POSTs answered 201 while the broker was down; "
        f"{pending} events waited in the registrations' outboxes; relay and consumer "
        "resumed without a service restart",
    )
    assert delivery.lost == 0, f"{delivery.lost} participants got no confirmation"
    assert delivery.duplicated == 0, delivery.duplicate_message_ids
    assert await ready_status(registration.url) == 200
    assert await ready_status(notification.url) == 200


async def _is(status: Awaitable[int | None], expected: int) -> bool:
    return await status == expected
