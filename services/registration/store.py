"""The registration service's MongoDB: events, registrations, idempotency keys.

Seats are counted on the event document with a conditional ``$inc`` (never a
count-then-write), so confirmed registrations cannot exceed capacity under any
concurrency. The registration and its first event are one insert (outbox inside).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from shared import outbox
from shared.outbox import WriteSignal, ensure_outbox_indexes
from shared.timeutil import epoch

EVENTS = "events"
REGISTRATIONS = "registrations"
IDEMPOTENCY = "idempotency_keys"


class RegistrationStore:
    def __init__(self, db: AsyncDatabase, *, signal: WriteSignal | None = None) -> None:
        # Reported after each write that leaves events to publish (the relay listens).
        self.signal = signal or WriteSignal()
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
        # Organisers' lists page by (created_at, _id) within an event.
        # Organisers' lists page by (created_us, _id) within an event. A number, not the
        # ISO string: range queries on ISO-looking strings are unreliable on nx-27017.
        await self.registrations.create_index([("event_id", ASCENDING), ("created_us", ASCENDING)])
        await self.registrations.create_index([("idempotency_key", ASCENDING)])
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
        await outbox.insert(self.events, doc, signal=self.signal)

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

    async def set_seats_taken(self, event_id: str, expected: int, actual: int) -> bool:
        """Repair the counter only if nobody moved it since it was read (compare-and-set)."""
        result = await self.events.update_one(
            {"_id": event_id, "seats_taken": expected}, {"$set": {"seats_taken": actual}}
        )
        return result.matched_count == 1

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
        await outbox.insert(self.registrations, doc, signal=self.signal)

    async def find_by_email(self, event_id: str, email: str) -> dict[str, Any] | None:
        return await self.registrations.find_one({"event_id": event_id, "email": email})

    async def find_by_reference(self, reference: str) -> dict[str, Any] | None:
        return await self.registrations.find_one({"reference": reference})

    async def get_registration(self, registration_id: str) -> dict[str, Any] | None:
        return await self.registrations.find_one({"_id": registration_id})

    async def first_waitlisted(self, event_id: str, skip: int = 0) -> dict[str, Any] | None:
        """The waitlisted registration with the lowest position (first come, first served)."""
        docs = await self.registrations.find(
            {"event_id": event_id, "status": "waitlisted"},
            sort=[("waitlist_position", ASCENDING)],
            skip=skip,
            limit=1,
        ).to_list()
        return docs[0] if docs else None

    async def count_confirmed(self, event_id: str) -> int:
        return await self.registrations.count_documents(
            {"event_id": event_id, "status": "confirmed"}
        )

    # -- organisers' views ---------------------------------------------------------

    @staticmethod
    def registration_query(event_id: str, filters: dict[str, Any]) -> dict[str, Any]:
        """The query of a filtered list: exact filters plus case-insensitive free text."""
        query: dict[str, Any] = {"event_id": event_id}
        for name in ("status", "cadre", "institution", "region"):
            if filters.get(name):
                query[name] = filters[name]
        text = filters.get("q")
        if text:
            pattern = {"$regex": re.escape(text), "$options": "i"}
            query["$or"] = [
                {"full_name": pattern},
                {"email": pattern},
                {"institution": pattern},
                {"reference": pattern},
                {"position": pattern},
            ]
        return query

    async def page_registrations(
        self,
        event_id: str,
        filters: dict[str, Any],
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """One page, oldest first, after a (created_us, _id) keyset cursor."""
        query = self.registration_query(event_id, filters)
        if after is not None:
            created_us, last_id = after
            keyset = {
                "$or": [
                    {"created_us": {"$gt": created_us}},
                    {"created_us": created_us, "_id": {"$gt": last_id}},
                ]
            }
            query = {"$and": [query, keyset]}
        return await self.registrations.find(
            query,
            projection={"outbox": 0, "manage_token_hash": 0},
            sort=[("created_us", ASCENDING), ("_id", ASCENDING)],
            limit=limit,
        ).to_list()

    async def stream_registrations(
        self, event_id: str, filters: dict[str, Any], batch_size: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching registration through a server cursor, never all in memory."""
        cursor = self.registrations.find(
            self.registration_query(event_id, filters),
            projection={"outbox": 0, "manage_token_hash": 0},
            sort=[("created_us", ASCENDING), ("_id", ASCENDING)],
            batch_size=batch_size,
        )
        try:
            async for doc in cursor:
                yield doc
        finally:
            await cursor.close()

    async def statistics(self, event_id: str) -> dict[str, dict[str, int]]:
        """Counts by status, and of active registrations by cadre, institution, region."""
        result: dict[str, dict[str, int]] = {}
        for name in ("status", "cadre", "institution", "region"):
            match: dict[str, Any] = {"event_id": event_id}
            if name != "status":  # who is coming: leave out the cancelled and rejected
                match["status"] = {"$in": ["confirmed", "waitlisted", "pending_approval"]}
            rows = await self.registrations.aggregate(
                [
                    {"$match": match},
                    {"$group": {"_id": f"${name}", "count": {"$sum": 1}}},
                    {"$sort": {"count": DESCENDING}},
                ]
            )
            counts: dict[str, int] = {}
            async for row in rows:
                counts[str(row["_id"]) if row["_id"] is not None else "unspecified"] = int(
                    row["count"]
                )
            result[name] = counts
        return result

    # -- idempotency keys ----------------------------------------------------------

    async def claim_idempotency_key(
        self, key: str, request_hash: str, now: str, *, lease_s: float = 10.0
    ) -> tuple[dict | None, bool]:
        """Claim a key: ``(None, False)`` when new, ``(record, False)`` when used before.

        A pending claim older than ``lease_s`` belonged to a request that never finished
        (its process died, or MongoDB went away before it could release the key): it is
        taken over, ``(record, True)``, so that retries are not refused for ever.
        """
        from pymongo.errors import DuplicateKeyError

        claimed_at = epoch()
        try:
            await self.idempotency.insert_one(
                {
                    "_id": key,
                    "request_hash": request_hash,
                    "state": "pending",
                    "created_at": now,
                    "claimed_at": claimed_at,
                }
            )
            return None, False
        except DuplicateKeyError:
            record = await self.idempotency.find_one({"_id": key})
        if (
            record is not None
            and record.get("state") == "pending"
            and record.get("request_hash") == request_hash
            and float(record.get("claimed_at", 0)) < claimed_at - lease_s
        ):
            taken = await self.idempotency.update_one(
                {"_id": key, "state": "pending", "claimed_at": record.get("claimed_at", 0)},
                {"$set": {"claimed_at": claimed_at}},
            )
            if taken.matched_count == 1:
                return record, True
        return record, False

    async def complete_idempotency_key(self, key: str, status: int, body: dict[str, Any]) -> None:
        await self.idempotency.update_one(
            {"_id": key}, {"$set": {"state": "done", "status": status, "response": body}}
        )

    async def release_idempotency_key(self, key: str) -> None:
        await self.idempotency.delete_one({"_id": key, "state": "pending"})
