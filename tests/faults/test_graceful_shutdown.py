"""Fault 8: SIGTERM to each service — it stops taking work, finishes, flushes and exits."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest
from pymongo import AsyncMongoClient

from shared.topics import REGISTRATION
from tests.faults.support import (
    MailIndex,
    count_deliveries,
    references_of,
    register_many,
    wait_all_delivered,
)
from tests.helpers import TopicReader, create_event, participant
from tests.stack import wait_until

pytestmark = pytest.mark.e2e

GRACE_S = 6.0  # *_SHUTDOWN_GRACE_S in the fault stack
BOUND_S = GRACE_S + 5.0  # what we promise: the grace period, plus closing the clients
CLEAN = (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM once it has shut down


async def test_sigterm_each_service_finishes_its_work_and_exits_in_bound(
    fault_stack, reliability
) -> None:
    """SIGTERM to each service under load"""
    stack = fault_stack
    registration = await stack.start("registration")
    notification = await stack.start("notification")
    resolutions = await stack.start("resolutions")
    event = await create_event(registration.url, stack.admin_headers, capacity=200)

    # Registration: SIGTERM while 30 requests are in flight.
    answers: list[tuple[float, int | None, dict]] = []

    async def post(client: httpx.AsyncClient, i: int) -> None:
        try:
            r = await client.post(
                f"/api/v1/events/{event['id']}/registrations",
                json=participant(language="en", full_name=f"Shutdown Test {i}"),
            )
            answers.append((time.monotonic(), r.status_code, r.json()))
        except httpx.HTTPError:
            answers.append((time.monotonic(), None, {}))

    limits = httpx.Limits(max_connections=30)
    async with httpx.AsyncClient(base_url=registration.url, timeout=20, limits=limits) as client:
        tasks = [asyncio.create_task(post(client, i)) for i in range(90)]
        await wait_until(lambda: len(answers) >= 10, timeout=20)
        sent = time.monotonic()
        code = await registration.stop(signal.SIGTERM, timeout=30)
        took = time.monotonic() - sent
        await asyncio.gather(*tasks)
    ok = [body for _, status, body in answers if status == 201]
    after_signal = [1 for at, status, _ in answers if status == 201 and at > sent]
    errors = [status for _, status, _ in answers if status is not None and status >= 500]
    assert code in CLEAN and "service_stopped" in registration.logs(), code
    assert took < BOUND_S, f"registration took {took:.1f}s to stop"
    assert errors == [], errors
    assert after_signal, "no request was in flight at SIGTERM: nothing was tested"
    # Every acknowledged registration's event left the outbox and is on the stream.
    db = AsyncMongoClient(stack.mongo.url)[registration.env["REGISTRATION_MONGO_DB"]]
    try:
        pending = await db.registrations.count_documents({"outbox_pending": True})
    finally:
        await db.client.close()
    assert pending == 0
    ids = {body["id"] for body in ok}
    async with TopicReader(stack.kafka.bootstrap, [REGISTRATION]) as reader:
        await reader.wait_for(
            lambda r: r.key in ids and r.ce_type.endswith("ParticipantRegistered.v2"),
            count=len(ids),
            timeout=20,
        )
    reliability.record(
        issue=8,
        fault="SIGTERM to registration (30 requests in flight), notification (mid-burst), "
        "resolutions",
        note=f"registration: exited in {took:.1f} s (code {code}); {len(after_signal)} "
        f"requests in flight at the signal completed with 201, {len(answers) - len(ok)} "
        f"later ones were refused (connection), none got a 5xx; outbox empty, all {len(ids)} "
        "events on the topic",
    )

    # Notification: SIGTERM mid-burst, then started again: no email lost or doubled.
    registration = await stack.start("registration")
    answers2 = await register_many(registration.url, event["id"], 40)
    references = references_of(answers2) | {body["reference"] for body in ok}
    index = MailIndex(stack.smtp)
    await wait_until(lambda: count_deliveries(index, references).delivered >= 15, timeout=30)
    sent = time.monotonic()
    code = await notification.stop(signal.SIGTERM, timeout=30)
    took_n = time.monotonic() - sent
    assert code in CLEAN and "service_stopped" in notification.logs(), code
    assert took_n < BOUND_S, f"notification took {took_n:.1f}s to stop"
    at_stop = count_deliveries(index, references).delivered
    notification = await stack.start("notification")
    delivery = await wait_all_delivered(stack.smtp, references, timeout=60, settle_s=1.0)

    sent = time.monotonic()
    code = await resolutions.stop(signal.SIGTERM, timeout=30)
    took_r = time.monotonic() - sent
    assert code in CLEAN and "service_stopped" in resolutions.logs(), code
    assert took_r < BOUND_S

    reliability.record(
        messages=len(references),
        accepted=len(references),
        delivered=delivery.delivered,
        lost=delivery.lost,
        duplicated=delivery.duplicated,
        note=f"notification: exited in {took_n:.1f} s after {at_stop}/{len(references)} "
        "emails; after a restart every participant had exactly one",
    )
    reliability.record(
        note=f"resolutions: exited in {took_r:.1f} s; bound asserted for each: "
        f"{BOUND_S:.0f} s (shutdown grace {GRACE_S:.0f} s + closing clients)"
    )
    assert delivery.lost == 0 and delivery.duplicated == 0, delivery.duplicate_message_ids
