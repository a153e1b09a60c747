"""Faults 2, 3 and 7: the notification service crashes, the SMTP relay is down, a rebalance."""

from __future__ import annotations

import signal
import time
from datetime import datetime

import pytest
from pymongo import AsyncMongoClient

from tests.faults.support import (
    MailIndex,
    count_deliveries,
    references_of,
    register_many,
    wait_all_delivered,
)
from tests.helpers import create_event
from tests.stack import wait_until

pytestmark = pytest.mark.e2e

BURST = 60


async def test_notification_sigkill_mid_burst_loses_nothing(fault_stack, reliability) -> None:
    """Notification service SIGKILLed mid-burst, then restarted"""
    stack = fault_stack
    registration = await stack.start("registration")
    notification = await stack.start("notification")
    event = await create_event(registration.url, stack.admin_headers, capacity=BURST + 10)

    answers = await register_many(registration.url, event["id"], BURST)
    references = references_of(answers)
    assert len(references) == BURST
    index = MailIndex(stack.smtp)
    await wait_until(
        lambda: count_deliveries(index, references).delivered >= BURST // 5,
        timeout=30,
        message="the burst did not start being delivered",
    )
    notification.kill()
    at_kill = count_deliveries(index, references).delivered
    reliability.record(
        issue=2,
        fault=f"notification SIGKILL after {at_kill}/{BURST} emails, then restart",
        messages=BURST,
        accepted=len(references),
    )
    assert at_kill < BURST, "the burst finished before the kill: nothing was tested"

    await notification.restart()
    back = time.monotonic()
    delivery = await wait_all_delivered(stack.smtp, references, timeout=60, settle_s=1.0)
    reliability.record(
        delivered=delivery.delivered,
        lost=delivery.lost,
        duplicated=delivery.duplicated,
        recovery_s=time.monotonic() - back,
        note="claims of the killed process are taken again after their lease "
        "(NOTIFICATION_SEND_LEASE_S=5 here, 60 s by default); records consumed but not "
        "committed are redelivered and deduplicated on the notification id",
    )
    reliability.record(
        note=f"re-sent copies detected by Message-ID: {delivery.duplicated} (the kill can fall "
        "between SMTP accepting a message and the sender marking it sent: at most one "
        "message per sender in flight can be sent twice, with the same Message-ID)"
    )
    if delivery.duplicated:
        reliability.record(
            note=f"{delivery.duplicated} re-sent copy(ies), same Message-ID "
            f"{delivery.duplicate_message_ids}: the kill fell between SMTP accepting the "
            "message and the sender marking it sent (at-least-once at the SMTP boundary)"
        )
    assert delivery.lost == 0, f"{delivery.lost} confirmations lost"
    # At most the messages in flight at the kill (one per sender) can be re-sent, and
    # each copy carries the same Message-ID, so mail clients and relays collapse it.
    senders = 8
    assert delivery.duplicated <= senders


async def test_smtp_outage_is_retried_with_backoff_until_delivered(
    fault_stack, reliability
) -> None:
    """SMTP relay down for a while, then back"""
    stack = fault_stack
    registration = await stack.start("registration")
    notification = await stack.start("notification", NOTIFICATION_MAX_SEND_ATTEMPTS="60")
    event = await create_event(registration.url, stack.admin_headers, capacity=20)

    await stack.smtp.stop()
    down = time.monotonic()
    answers = await register_many(registration.url, event["id"], 10)
    references = references_of(answers)
    assert len(references) == 10

    db = AsyncMongoClient(stack.mongo.url)[notification.env["NOTIFICATION_MONGO_DB"]]
    try:
        # Every message is being retried, each with several failed attempts behind it.
        async def retried() -> list[dict]:
            docs = await db.notifications.find({"channel": "email"}).to_list()
            ok = len(docs) == 10 and all(len(d.get("errors") or []) >= 4 for d in docs)
            return docs if ok else []

        docs = await wait_until(retried, timeout=30, message="messages were not retried")
        assert {d["status"] for d in docs} <= {"retry", "sending"}
        # Backoff: the wait between attempts grows (exponential, jittered, capped).
        for doc in docs:
            times = [datetime.fromisoformat(e["at"]).timestamp() for e in doc["errors"]]
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
            assert gaps[-1] > gaps[0], gaps
        attempts_during_outage = sum(d["attempts"] for d in docs)

        await stack.smtp.start()
        outage = time.monotonic() - down
        back = time.monotonic()
        delivery = await wait_all_delivered(stack.smtp, references, timeout=30, settle_s=1.0)
        sent = await db.notifications.count_documents({"channel": "email", "status": "sent"})
    finally:
        await db.client.close()
    reliability.record(
        issue=3,
        fault=f"SMTP relay stopped for {outage:.0f} s",
        messages=10,
        accepted=len(references),
        delivered=delivery.delivered,
        lost=delivery.lost,
        duplicated=delivery.duplicated,
        recovery_s=time.monotonic() - back,
        note=f"{attempts_during_outage} failed attempts during the outage, each waiting "
        "longer (NOTIFICATION_RETRY_BASE_S=0.2, cap 1 s here; 1 s and 300 s by default)",
    )
    assert delivery.lost == 0 and delivery.duplicated == 0
    assert sent == 10


async def test_rebalance_when_one_of_two_instances_stops(fault_stack, reliability) -> None:
    """Two notification instances in one group, one stopped mid-stream"""
    stack = fault_stack
    registration = await stack.start("registration")
    first = await stack.start("notification")
    second = await stack.start("notification")  # same group, same database
    event = await create_event(registration.url, stack.admin_headers, capacity=BURST + 10)

    answers = await register_many(registration.url, event["id"], BURST)
    references = references_of(answers)
    index = MailIndex(stack.smtp)
    await wait_until(
        lambda: count_deliveries(index, references).delivered >= BURST // 5,
        timeout=30,
        message="the burst did not start being delivered",
    )
    stopped_at = time.monotonic()
    code = await second.stop()
    at_stop = count_deliveries(index, references).delivered
    reliability.record(
        issue=7,
        fault=f"2nd of 2 group members SIGTERMed after {at_stop}/{BURST} emails (rebalance)",
        messages=BURST,
        accepted=len(references),
    )
    delivery = await wait_all_delivered(stack.smtp, references, timeout=60, settle_s=1.0)
    reliability.record(
        delivered=delivery.delivered,
        lost=delivery.lost,
        duplicated=delivery.duplicated,
        recovery_s=time.monotonic() - stopped_at,
        note=f"the stopped instance exited with code {code}; the other took over its "
        "partitions and its unfinished claims",
    )
    # uvicorn re-raises SIGTERM after its graceful shutdown: -15 is a clean stop too.
    assert code in (0, -signal.SIGTERM) and "service_stopped" in second.logs()
    assert first.alive
    assert delivery.lost == 0 and delivery.duplicated == 0, delivery.duplicate_message_ids
