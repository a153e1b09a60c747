"""The registration service's MongoDB: events, registrations, idempotency keys.

Seats are counted on the event document with a conditional ``$inc`` (never a
count-then-write), so confirmed registrations cannot exceed capacity under any
concurrency. The registration and its first event are one insert (outbox inside).
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from shared.outbox import ensure_outbox_indexes

EVENTS = "events"
REGISTRATIONS = "registrations"
IDEMPOTENCY = "idempotency_keys"


class RegistrationStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.events = db[EVENTS]
        self.registrations = db[REGISTRATIONS]
        self.idempotency = db[IDEMPOTENCY]

    async def ensure_indexes(self) -> None:
        await self.registrations.create_index(
            [("event_id", ASCENDING), ("email", ASCENDING)], unique=True
        )
        await self.registrations.create_index([("reference", ASCENDING)], unique=True)
        await self.registrations.create_index(
            [("event_id", ASCENDING), ("status", ASCENDING), ("waitlist_position", ASCENDING)]
        )
        await self.events.create_index([("code", ASCENDING)], unique=True)
        await ensure_outbox_indexes(self.events)
        await ensure_outbox_indexes(self.registrations)

    # -- events --------------------------------------------------------------------

    async def get_event(self, event_id: str) -> dict[str, Any] | None:
        return await self.events.find_one({"_id": event_id})

    async def list_events(self, state: str | None = "published") -> list[dict[str, Any]]:
        query = {"state": state} if state else {}
        return await self.events.find(query, sort=[("starts_at", ASCENDING)]).to_list()

    async def insert_event(self, doc: dict[str, Any]) -> None:
        await self.events.insert_one(doc)

    async def take_seat(self, event_id: str) -> bool:
        """Atomically take one seat if any is left."""
        doc = await self.events.find_one_and_update(
            {"_id": event_id, "$expr": {"$lt": ["$seats_taken", "$capacity"]}},
            {"$inc": {"seats_taken": 1}},
            projection={"seats_taken": 1},
            return_document=ReturnDocument.AFTER,
        )
        return doc is not None

    async def release_seat(self, event_id: str) -> None:
        await self.events.update_one(
            {"_id": event_id, "seats_taken": {"$gt": 0}}, {"$inc": {"seats_taken": -1}}
        )

    async def next_waitlist_position(self, event_id: str) -> int:
        doc = await self.events.find_one_and_update(
            {"_id": event_id},
            {"$inc": {"waitlist_seq": 1}},
            projection={"waitlist_seq": 1},
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["waitlist_seq"]) if doc else 0

    # -- registrations -------------------------------------------------------------

    async def insert_registration(self, doc: dict[str, Any]) -> None:
        await self.registrations.insert_one(doc)

    async def find_by_email(self, event_id: str, email: str) -> dict[str, Any] | None:
        return await self.registrations.find_one({"event_id": event_id, "email": email})

    async def find_by_reference(self, reference: str) -> dict[str, Any] | None:
        return await self.registrations.find_one({"reference": reference})

    # -- idempotency keys ----------------------------------------------------------

    async def claim_idempotency_key(self, key: str, request_hash: str, now: str) -> dict | None:
        """Insert a pending record; returns the existing one if the key was used before."""
        from pymongo.errors import DuplicateKeyError

        try:
            await self.idempotency.insert_one(
                {"_id": key, "request_hash": request_hash, "state": "pending", "created_at": now}
            )
            return None
        except DuplicateKeyError:
            return await self.idempotency.find_one({"_id": key})

    async def complete_idempotency_key(self, key: str, status: int, body: dict[str, Any]) -> None:
        await self.idempotency.update_one(
            {"_id": key}, {"$set": {"state": "done", "status": status, "response": body}}
        )

    async def release_idempotency_key(self, key: str) -> None:
        await self.idempotency.delete_one({"_id": key, "state": "pending"})
