"""Fault 6: MongoDB is killed and restarted while participants register."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from pymongo import AsyncMongoClient

from tests.faults.support import ready_status, references_of, register_many, wait_all_delivered
from tests.helpers import create_event
from tests.stack import wait_until

pytestmark = pytest.mark.e2e

LOAD = 120
RETRY_S = 20.0


async def test_mongo_restart_under_load_loses_no_acknowledged_write(
    fault_stack, reliability
) -> None:
    """MongoDB killed and restarted under load"""
    stack = fault_stack
    registration = await stack.start("registration")
    notification = await stack.start("notification")
    event = await create_event(registration.url, stack.admin_headers, capacity=LOAD + 10)
    services = (registration, notification)

    # Clients that retry a failed POST with the same Idempotency-Key, for up to 60 s.
    load = asyncio.create_task(
        register_many(registration.url, event["id"], LOAD, concurrency=6, retry_until_s=RETRY_S)
    )
    db_name = registration.env["REGISTRATION_MONGO_DB"]

    async def registered() -> int:
        client = AsyncMongoClient(stack.mongo.url, serverSelectionTimeoutMS=1000)
        try:
            return await client[db_name].registrations.count_documents({})
        finally:
            await client.close()

    await wait_until(lambda: _at_least(registered(), 20), timeout=30)
    stack.mongo.kill()
    down = time.monotonic()
    # Readiness says so while MongoDB is gone (liveness does not: no restart loop).
    for service in services:
        await wait_until(
            lambda s=service: _is(ready_status(s.url), 503),
            timeout=15,
            message=f"{service.name} stayed ready with MongoDB down",
        )
    await asyncio.sleep(1.0)  # keep it down while clients keep trying
    await stack.mongo.restart()
    outage = time.monotonic() - down
    back = time.monotonic()
    for service in services:
        await wait_until(
            lambda s=service: _is(ready_status(s.url), 200),
            timeout=30,
            message=f"{service.name} did not become ready again by itself",
        )
    ready_again = time.monotonic() - back
    assert all(s.alive for s in services)

    answers = await load
    statuses = Counter(str(a["status"]) for a in answers)
    # What clients saw while MongoDB was away (every answer but the last of each client).
    interim = Counter(h for a in answers for h in a["history"][:-1])
    stuck = [a["history"][-1] for a in answers if a["status"] != 201]
    references = references_of(answers)
    ids = {a["body"]["id"] for a in answers if a["status"] == 201}
    client = AsyncMongoClient(stack.mongo.url)
    try:
        stored = await client[db_name].registrations.find({"event_id": event["id"]}).to_list()
    finally:
        await client.close()
    stored_ids = Counter(d["_id"] for d in stored)
    lost_writes = ids - set(stored_ids)
    delivery = await wait_all_delivered(stack.smtp, references, timeout=60, settle_s=1.0)
    reliability.record(
        issue=6,
        fault=f"MongoDB SIGKILL for {outage:.1f} s during {LOAD} POSTs (clients retry "
        "with Idempotency-Key)",
        messages=LOAD,
        accepted=len(ids),
        delivered=delivery.delivered,
        lost=delivery.lost + len(lost_writes),
        duplicated=delivery.duplicated,
        recovery_s=ready_again,
        note=f"{len(lost_writes)} acknowledged registrations missing after the restart; both "
        f"services reported not-ready while it was down and were ready again "
        f"{ready_again:.1f} s after it was back, without a restart",
    )
    reliability.record(
        note=f"answers during the outage (then retried): {dict(interim)}; final answers "
        f"{dict(statuses)}"
    )
    reliability.record(
        note=f"clients whose first attempt died with MongoDB: a key claimed just before the "
        f"crash is taken over after its 10 s lease and answers with what the first attempt "
        f"stored; clients still refused after {RETRY_S:.0f} s of retries: {len(stuck)}; "
        f"registrations stored without their client's 201: {len(stored) - len(ids)}"
    )
    assert not stuck, f"clients still refused after retrying: {sorted(set(stuck))}"
    assert len(stored) == len(ids), "a registration was stored whose client never got its 201"
    assert not lost_writes, f"{len(lost_writes)} acknowledged writes lost"
    assert len(set(stored_ids)) == len(stored)
    # While MongoDB is away the API answers a clear, retryable 503, never a 500.
    assert not any(h.startswith("500") for h in interim), interim
    assert delivery.lost == 0 and delivery.duplicated == 0, delivery.duplicate_message_ids


async def _is(status, expected: int) -> bool:
    return await status == expected


async def _at_least(count, expected: int) -> bool:
    return await count >= expected
