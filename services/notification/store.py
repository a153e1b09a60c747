"""The notification service's MongoDB: notifications (the delivery log) and participants.

A notification's ``_id`` is derived from (cause event id, channel, recipient), so a
redelivered or duplicated event cannot create a second one. Sending is claim → send →
mark sent; a claim carries a lease, and a claim whose worker died is taken again once
the lease has expired.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.outbox import ensure_outbox_indexes
from shared.timeutil import epoch

NOTIFICATIONS = "notifications"
PARTICIPANTS = "participants"


class NotificationStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.notifications = db[NOTIFICATIONS]
        self.participants = db[PARTICIPANTS]

    async def ensure_indexes(self) -> None:
        await self.notifications.create_index(
            [("status", ASCENDING), ("next_attempt_at", ASCENDING)]
        )
        await self.notifications.create_index([("registration_id", ASCENDING)])
        await ensure_outbox_indexes(self.notifications)

    async def add(self, docs: list[dict[str, Any]]) -> int:
        """Insert new notifications; ones that exist already are left as they are."""
        if not docs:
            return 0
        try:
            result = await self.notifications.insert_many(docs, ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            others = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
            if others:
                raise
            return int(exc.details.get("nInserted", 0))
        except DuplicateKeyError:
            return 0

    async def claim_due(self, lease_s: float) -> dict[str, Any] | None:
        """Take one due notification (or one whose sender's lease expired)."""
        now = epoch()
        return await self.notifications.find_one_and_update(
            {
                "$or": [
                    {"status": {"$in": ["pending", "retry"]}, "next_attempt_at": {"$lte": now}},
                    {"status": "sending", "lease_until": {"$lt": now}},
                ]
            },
            {
                "$set": {"status": "sending", "lease_until": now + lease_s},
                "$inc": {"attempts": 1, "rev": 1},
            },
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def get(self, notification_id: str) -> dict[str, Any] | None:
        return await self.notifications.find_one({"_id": notification_id})

    async def upsert_participant(self, registration_id: str, fields: dict[str, Any]) -> None:
        await self.participants.update_one({"_id": registration_id}, {"$set": fields}, upsert=True)
