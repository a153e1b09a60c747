"""Fault 5: the same event delivered twice, and an older event after a newer one."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import httpx
import pytest
from pymongo import AsyncMongoClient

from shared.topics import REGISTRATION_NOTICES
from tests.faults.support import MailIndex, count_deliveries
from tests.helpers import TopicReader, cloudevent_headers, create_event, participant, publish_raw
from tests.stack import wait_until

pytestmark = pytest.mark.e2e

PREFIX = "tz.go.ega.registration."


async def test_duplicate_and_stale_events_have_one_effect(fault_stack, reliability) -> None:
    """The same event twice, and an older event after a newer one"""
    stack = fault_stack
    registration = await stack.start("registration")
    notification = await stack.start("notification")
    event = await create_event(registration.url, stack.admin_headers, capacity=10)
    async with httpx.AsyncClient(base_url=registration.url, timeout=10) as client:
        r = await client.post(
            f"/api/v1/events/{event['id']}/registrations", json=participant(language="en")
        )
    assert r.status_code == 201, r.text
    created = r.json()
    ref = created["reference"]
    # Notification acts on the private notices (contact details, ticket): replay those.
    async with TopicReader(stack.kafka.bootstrap, [REGISTRATION_NOTICES]) as reader:
        (original,) = await reader.wait_for(
            lambda rec: (
                rec.key == created["id"] and rec.ce_type.endswith("ParticipantRegisteredNotice.v1")
            )
        )
    index = MailIndex(stack.smtp)
    await wait_until(lambda: count_deliveries(index, {ref}).delivered == 1, timeout=20)

    async def publish(headers: dict[str, str], value: dict) -> None:
        await publish_raw(
            stack.kafka.bootstrap,
            REGISTRATION_NOTICES,
            key=created["id"],
            headers=headers,
            value=json.dumps(value).encode(),
        )

    # 1. The very same CloudEvent (same ce_id) twice more.
    for _ in range(2):
        await publish(original.headers, original.value)
    # 2. An older state change after the newer one: "waitlisted" from before "confirmed".
    then = datetime.fromisoformat(original.headers["ce_time"].replace("Z", "+00:00"))
    stale_time = then - timedelta(hours=1)
    stale = cloudevent_headers(PREFIX + "ParticipantWaitlistedNotice.v1", source="/registration")
    stale["ce_time"] = stale_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await publish(
        stale,
        {
            **original.value,
            "status": "waitlisted",
            "waitlist_position": 1,
            "waitlisted_at": stale_time.isoformat(),
        },
    )
    # 3. A newer event still has its effect (the guard does not block the stream).
    newer = cloudevent_headers(
        PREFIX + "ConfirmationResendRequestedNotice.v1", source="/registration"
    )
    await publish(
        newer, {**original.value, "requested_at": datetime.now().astimezone().isoformat()}
    )

    db = AsyncMongoClient(stack.mongo.url)[notification.env["NOTIFICATION_MONGO_DB"]]
    try:
        await wait_until(
            lambda: _count(
                db.processed_events, {"_id": {"$in": [stale["ce_id"], newer["ce_id"]]}}, 2
            ),
            timeout=20,
            message="the stale and the newer event were not consumed",
        )
        resend = await stack.smtp.wait_for(
            lambda m: (
                ref in str(m["Subject"]) and str(m["Subject"]).startswith("Your registration")
            ),
            timeout=20,
        )
        settle = time.monotonic()
        await wait_until(lambda: time.monotonic() - settle > 1.0, timeout=3)  # late copies?
        projection = await db.participants.find_one({"_id": created["id"]})
        logged = await db.notifications.count_documents({"registration_id": created["id"]})
    finally:
        await db.client.close()
    subjects = [s for s, _ in MailIndex(stack.smtp).headers() if ref in s]
    confirmations = [s for s in subjects if s.startswith("Registration confirmed")]
    waitlisted = [s for s in subjects if "waiting list" in s]
    reliability.record(
        issue=5,
        fault="same ce_id delivered 3 times; an event 1 h older delivered after the newer one",
        messages=4,
        accepted=4,
        delivered=len(subjects),
        duplicated=len(confirmations) - 1,
        lost=0 if len(resend) == 1 else 1,
        note=f"emails for the registration: {len(confirmations)} confirmation, {len(waitlisted)} "
        f"stale waiting-list, {len(resend)} resend (the newer event); projection status "
        f"'{projection['status'] if projection else None}'",
    )
    assert len(confirmations) == 1, subjects
    assert waitlisted == [], "a stale event sent an out-of-date email"
    assert len(resend) == 1
    assert projection is not None and projection["status"] == "confirmed"
    assert logged == 2  # the confirmation and the resend, nothing for the stale event


async def _count(collection, query: dict, expected: int) -> bool:
    return await collection.count_documents(query) == expected
