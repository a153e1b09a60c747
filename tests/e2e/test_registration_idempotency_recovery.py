"""A retried POST whose first attempt died midway (process or MongoDB gone) is not refused
for ever: after the claim's lease it answers with what the first attempt stored, or
registers now."""

from __future__ import annotations

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.registration.domain import RegistrationRequest
from services.registration.handlers import request_fingerprint
from shared.timeutil import epoch, now_iso
from tests.helpers import create_event, participant

pytestmark = pytest.mark.e2e


async def test_abandoned_idempotency_claims_are_taken_over(platform) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers)
    url = f"/api/v1/events/{event['id']}/registrations"
    first, second = participant(), participant()
    client_db: AsyncMongoClient = AsyncMongoClient(platform.mongo.url)
    db = client_db[platform.registration.env["REGISTRATION_MONGO_DB"]]
    try:
        async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
            # 1. The first attempt stored its registration, then died before answering.
            r = await client.post(url, json=first, headers={"Idempotency-Key": "k-stored"})
            assert r.status_code == 201
            stored = r.json()
            key = f"{event['id']}:k-stored"
            await db.idempotency_keys.update_one(
                {"_id": key},
                {
                    "$set": {"state": "pending", "claimed_at": epoch() - 120},
                    "$unset": {"response": ""},
                },
            )
            retry = await client.post(url, json=first, headers={"Idempotency-Key": "k-stored"})
            assert retry.status_code == 201, retry.text
            assert (
                retry.json()["id"] == stored["id"]
                and retry.json()["reference"] == stored["reference"]
            )
            assert retry.headers.get("Idempotent-Replayed") == "true"

            # 2. The first attempt died before storing anything: the retry registers.
            fingerprint = request_fingerprint(
                event["id"], RegistrationRequest.model_validate(second).model_dump(mode="json")
            )
            await db.idempotency_keys.insert_one(
                {
                    "_id": f"{event['id']}:k-lost",
                    "request_hash": fingerprint,
                    "state": "pending",
                    "created_at": now_iso(),
                    "claimed_at": epoch() - 120,
                }
            )
            retry = await client.post(url, json=second, headers={"Idempotency-Key": "k-lost"})
            assert retry.status_code == 201, retry.text

            # 3. A claim still within its lease is a request in progress: 409, nothing new.
            third = participant()
            await db.idempotency_keys.insert_one(
                {
                    "_id": f"{event['id']}:k-busy",
                    "request_hash": request_fingerprint(
                        event["id"],
                        RegistrationRequest.model_validate(third).model_dump(mode="json"),
                    ),
                    "state": "pending",
                    "created_at": now_iso(),
                    "claimed_at": epoch(),
                }
            )
            busy = await client.post(url, json=third, headers={"Idempotency-Key": "k-busy"})
            assert busy.status_code == 409
            assert busy.json()["error"]["code"] == "request_in_progress"
        assert await db.registrations.count_documents({"event_id": event["id"]}) == 2
    finally:
        await client_db.close()
