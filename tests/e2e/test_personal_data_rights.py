"""PDPA 2022: a participant downloads their data and has it erased from every store;
the retention rule anonymises registrations of events long over."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pymongo import AsyncMongoClient

from shared.topics import REGISTRATION
from tests.helpers import TopicReader, create_event, participant
from tests.stack import wait_until

pytestmark = pytest.mark.e2e


async def _stores_holding(platform, needles: list[str]) -> dict[str, list[str]]:
    """Which collections of the three services' databases still hold any needle."""
    client: AsyncMongoClient = AsyncMongoClient(platform.mongo.url)
    found: dict[str, list[str]] = {}
    try:
        for name, service in platform.services.items():
            db = client[service.env[f"{name.upper()}_MONGO_DB"]]
            for collection in await db.list_collection_names():
                async for doc in db[collection].find():
                    text = json.dumps(doc, default=str).lower()
                    if any(n.lower() in text for n in needles):
                        found.setdefault(name, []).append(collection)
                        break
    finally:
        await client.close()
    return found


async def test_download_then_erasure_cleans_all_three_stores(platform) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers, capacity=1)
    body = participant(full_name="Faraji Mwinyimkuu", phone="0688 555 123", language="en")
    waiting = participant(full_name="Second In Line")
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        created = (
            await client.post(f"/api/v1/events/{event['id']}/registrations", json=body)
        ).json()
        second = (
            await client.post(f"/api/v1/events/{event['id']}/registrations", json=waiting)
        ).json()
        assert created["status"] == "confirmed" and second["status"] == "waitlisted"
        own = {"X-Manage-Token": created["manage_token"]}
        await platform.smtp.wait_for(lambda m: created["reference"] in str(m["Subject"]))
        needles = ["Mwinyimkuu", body["email"], "688555123"]
        await wait_until(lambda: _stores_holding(platform, needles), timeout=15)

        # Right of access: everything held, with consent and purpose.
        r = await client.get(f"/api/v1/registrations/{created['reference']}/data", headers=own)
        assert r.status_code == 200
        data = r.json()
        assert data["email"] == body["email"] and data["full_name"] == body["full_name"]
        assert data["consent"]["accepted"] is True and data["consent"]["given_at"]
        assert "manage_token_hash" not in data and "outbox" not in data
        assert (
            await client.get(f"/api/v1/registrations/{created['reference']}/data")
        ).status_code == 404

        # Erasure: cancels (the waitlisted participant is promoted) and anonymises.
        r = await client.post(f"/api/v1/registrations/{created['reference']}/erase", headers=own)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled"
        # The manage token is gone with the data.
        assert (
            await client.get(f"/api/v1/registrations/{created['reference']}", headers=own)
        ).status_code == 404

    async with TopicReader(platform.kafka.bootstrap, [REGISTRATION]) as reader:
        (erased,) = await reader.wait_for(
            lambda r: r.key == created["id"] and r.ce_type.endswith("PersonalDataErased.v1")
        )
        await reader.wait_for(
            lambda r: r.key == second["id"] and r.ce_type.endswith("WaitlistPromoted.v2")
        )
    assert erased.value["reason"] == "participant_request"
    assert not any(n.lower() in json.dumps(erased.value).lower() for n in needles)

    # Every service's store is clean of the participant's name, email and phone.
    held: dict[str, list[str]] = {}

    async def clean() -> bool:
        held.clear()
        held.update(await _stores_holding(platform, needles))
        return not held

    await wait_until(clean, timeout=30, message=lambda: f"still held in {held}")


async def test_retention_anonymises_registrations_of_events_long_over(platform) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers)
    body = participant(full_name="Tumaini Retention Case")
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        created = (
            await client.post(f"/api/v1/events/{event['id']}/registrations", json=body)
        ).json()
        # The event took place two years ago (organisers correct its dates).
        past = datetime.now(UTC) - timedelta(days=730)
        r = await client.patch(
            f"/api/v1/events/{event['id']}",
            headers=platform.admin_headers,
            json={"starts_at": past.isoformat(), "ends_at": (past + timedelta(days=2)).isoformat()},
        )
        assert r.status_code == 200, r.text
        r = await client.post("/api/v1/admin/retention/run", headers=platform.admin_headers)
        assert r.status_code == 200 and r.json()["erased"] >= 1
        listing = await client.get(
            f"/api/v1/events/{event['id']}/registrations", headers=platform.admin_headers
        )
        assert listing.status_code == 200
        text = listing.text
        assert "Tumaini" not in text and body["email"] not in text
        assert created["reference"] in text  # the record stays, without personal data
