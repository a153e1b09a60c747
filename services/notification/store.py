"""The notification service's MongoDB.

Collections:
- ``notifications``: the delivery log. A notification's ``_id`` is derived from (cause
  event id, channel, recipient), so a redelivered or duplicated event cannot create a
  second one. Sending is claim → send → mark sent; a claim carries a lease, and a claim
  whose worker died is taken again once the lease has expired.
- ``participants``: this service's projection of each registration's contact details,
  language and status (from the registration events), so it works while registration is
  down. Erased on ``PersonalDataErased``, leaving a tombstone so that a late event
  cannot bring the data back.
- ``events``: each event's details, state and reminder rules.
- ``reminders``: one per (event, offset, start time), due at an epoch time, claimed with a
  lease exactly like notifications.
- ``announcements``: an organiser's message to an event's participants and its fan-out.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.outbox import WriteSignal, ensure_outbox_indexes
from shared.timeutil import epoch, now_iso
from shared.waiting import ScanSchedule

NOTIFICATIONS = "notifications"
PARTICIPANTS = "participants"
EVENTS = "events"
REMINDERS = "reminders"
ANNOUNCEMENTS = "announcements"


# At most this many notifications are queued from one scan.
SCAN_BATCH = 500


class NotificationStore:
    def __init__(
        self, db: AsyncDatabase, *, signal: WriteSignal | None = None, scan_interval_s: float = 2.0
    ) -> None:
        # Reported after each write that leaves events to publish (the relay listens).
        self.signal = signal or WriteSignal()
        self.db = db
        self.notifications = db[NOTIFICATIONS]
        self.participants = db[PARTICIPANTS]
        self.events = db[EVENTS]
        self.reminders = db[REMINDERS]
        self.announcements = db[ANNOUNCEMENTS]
        # (notification id, status and lease when queued): see claim_next.
        self._ready: deque[tuple[str, str, float]] = deque()
        self._scans = ScanSchedule(scan_interval_s, 4 * scan_interval_s)

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on (idempotent)."""
        await self.notifications.create_index(
            [("status", ASCENDING), ("next_attempt_at", ASCENDING)]
        )
        await self.notifications.create_index([("registration_id", ASCENDING)])
        await self.notifications.create_index([("announcement_id", ASCENDING)])
        await ensure_outbox_indexes(self.notifications)
        await self.participants.create_index([("event_id", ASCENDING), ("status", ASCENDING)])
        await self.reminders.create_index([("status", ASCENDING), ("due_at", ASCENDING)])
        await self.reminders.create_index([("event_id", ASCENDING)])
        await self.announcements.create_index([("status", ASCENDING)])

    # -- notifications ------------------------------------------------------------

    async def add(self, docs: list[dict[str, Any]]) -> int:
        """Insert new notifications; ones that exist already are left as they are.

        Each new one is also queued for this process's senders (``claim_next``), so they
        take it by ``_id`` without querying the whole log.
        """
        if not docs:
            return 0
        try:
            await self.notifications.insert_many(docs, ordered=False)
            inserted = [d["_id"] for d in docs]
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            others = [e for e in errors if e.get("code") != 11000]
            if others:
                raise
            refused = {e.get("index") for e in errors}
            inserted = [d["_id"] for i, d in enumerate(docs) if i not in refused]
        except DuplicateKeyError:
            inserted = []
        for notification_id in inserted:
            self.hint(notification_id, "pending")
        return len(inserted)

    def hint(self, notification_id: str, status: str) -> None:
        """Queue a notification for this process's senders: new or resent (``pending``),
        or due again after a failure (``retry``); not leased either way."""
        self._ready.append((notification_id, status, 0.0))

    async def claim_next(self, lease_s: float) -> dict[str, Any] | None:
        """The next notification to send: a queued one by ``_id``; else, now and then, the
        ones a scan finds (due retries, expired leases, other instances' work) are queued.
        The queue keeps the common path free of collection scans, which the embedded
        server answers by reading every document; while scans find nothing, they run
        less often (up to four times the scan interval)."""
        for _ in range(2):
            while self._ready:
                # One round trip: claimed only if still as it was when queued (status and
                # lease); taken meanwhile (sent, or by another sender), it is skipped.
                notification_id, status, lease_until = self._ready.popleft()
                flt = {"_id": notification_id, "status": status, "lease_until": lease_until}
                doc = await self._claim(flt, lease_s)
                if doc is not None:
                    return doc
            if not self._scans.due():
                return None
            found = await self.due(SCAN_BATCH)
            self._ready.extend(found)
            self._scans.scanned(bool(found))
        return None

    async def due(self, limit: int) -> list[tuple[str, str, float]]:
        """Notifications to take now, most overdue first: due (pending or retry), or
        whose sender's lease expired. One query on the status (indexed on MongoDB); the
        choice is made here, and each claim is conditioned on what was read."""
        now = epoch()
        candidates = await self.notifications.find(
            {"status": {"$in": ["pending", "retry", "sending"]}},
            {"status": 1, "next_attempt_at": 1, "lease_until": 1},
        ).to_list()
        ready = [
            c
            for c in candidates
            if (
                c.get("status") in ("pending", "retry")
                and float(c.get("next_attempt_at") or 0) <= now
            )
            or (c.get("status") == "sending" and float(c.get("lease_until") or 0) < now)
        ]
        ready.sort(key=lambda c: float(c.get("next_attempt_at") or 0))
        return [(c["_id"], c["status"], c.get("lease_until", 0.0)) for c in ready[:limit]]

    async def _claim(self, flt: dict[str, Any], lease_s: float) -> dict[str, Any] | None:
        now = epoch()
        return await self.notifications.find_one_and_update(
            flt,
            {
                "$set": {"status": "sending", "lease_until": now + lease_s},
                "$inc": {"attempts": 1, "rev": 1},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def get(self, notification_id: str) -> dict[str, Any] | None:
        """One notification by id."""
        return await self.notifications.find_one({"_id": notification_id})

    # -- participants projection -------------------------------------------------

    async def upsert_participant(
        self,
        registration_id: str,
        fields: dict[str, Any],
        on_insert: dict[str, Any] | None = None,
        *,
        event_time: str | None = None,
    ) -> bool:
        """Update the projection; False if the registration's data was erased (tombstone),
        or if ``event_time`` (ISO) is older than the event it already reflects — a
        redelivered or replayed older event must not roll the projection back.

        Read, decide, then write conditioned on what was read. No ``$or`` and no ``$ne``
        in the update filter: on the embedded server an ``$or`` beside ``_id`` can match
        another document, and ``$ne`` never matches a missing field in an update.
        """
        for _ in range(10):
            doc = await self.participants.find_one({"_id": registration_id})
            stamped = {**fields, **({"last_event_time": event_time} if event_time else {})}
            if doc is None:
                try:
                    await self.participants.insert_one(
                        {**(on_insert or {}), **stamped, "_id": registration_id}
                    )
                    return True
                except DuplicateKeyError:  # another instance inserted it first: decide again
                    continue
            if doc.get("erased"):
                return False
            last = doc.get("last_event_time")
            if event_time is not None and last is not None and last > event_time:
                return False
            # An erasure in between replaces the document (no last_event_time): no match.
            flt: dict[str, Any] = {"_id": registration_id}
            if last is not None:
                flt["last_event_time"] = last
            result = await self.participants.update_one(flt, {"$set": stamped})
            if result.matched_count == 1:
                return True
        return False

    async def erase_participant(self, registration_id: str, event_id: str) -> None:
        """Replace the projection with a tombstone and scrub the delivery log's copies."""
        await self.participants.replace_one(
            {"_id": registration_id},
            {"_id": registration_id, "event_id": event_id, "erased": True, "erased_at": now_iso()},
            upsert=True,
        )
        # Messages not sent yet will not be: their recipient is gone.
        await self.notifications.update_many(
            {"registration_id": registration_id, "status": {"$in": ["pending", "retry"]}},
            {"$set": {"status": "cancelled", "last_error": "personal data erased"}},
        )
        await self.notifications.update_many(
            {"registration_id": registration_id},
            {
                "$set": {"recipient": "[erased]", "context": {}, "erased": True},
                "$inc": {"rev": 1},
            },
        )

    async def active_participants(
        self,
        event_id: str,
        *,
        cadre: str | None = None,
        ids: list[str] | None = None,
        statuses: tuple[str, ...] = ("confirmed",),
    ) -> list[dict[str, Any]]:
        """Not erased participants of an event in ``statuses`` (optionally of one cadre)."""
        query: dict[str, Any] = {
            "event_id": event_id,
            "status": statuses[0] if len(statuses) == 1 else {"$in": list(statuses)},
            "erased": {"$ne": True},
        }
        if cadre:
            query["cadre"] = cadre
        if ids is not None:
            query["_id"] = {"$in": ids}
        return await self.participants.find(query, sort=[("_id", ASCENDING)]).to_list()

    # -- reminders ------------------------------------------------------------------

    async def claim_reminder(self, lease_s: float) -> dict[str, Any] | None:
        """Take one due reminder (or one whose worker's lease expired)."""
        now = epoch()
        return await self.reminders.find_one_and_update(
            {
                "$or": [
                    {"status": "pending", "due_at": {"$lte": now}},
                    {"status": "firing", "lease_until": {"$lt": now}},
                ]
            },
            {"$set": {"status": "firing", "lease_until": now + lease_s, "claimed_at": now_iso()}},
            sort=[("due_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    # -- announcements ----------------------------------------------------------------

    async def claim_announcement(self, lease_s: float) -> dict[str, Any] | None:
        """Take one announcement still fanning out whose lease is free."""
        now = epoch()
        return await self.announcements.find_one_and_update(
            {"status": "fanning_out", "lease_until": {"$lt": now}},
            {"$set": {"lease_until": now + lease_s}, "$inc": {"rev": 1}},
            return_document=ReturnDocument.AFTER,
        )
