"""The notification service's MongoDB: the one module that touches it.

``MongoNotificationStore`` implements ``ports.NotificationStore``. Collections:
- ``notifications``: the delivery log. A notification's ``_id`` is derived from (cause
  event id, channel, recipient), so a redelivered or duplicated event cannot create a
  second one. Sending is claim → send → mark sent; a claim carries a lease, and a claim
  whose worker died is taken again once the lease has expired. Each notification's
  events (``NotificationSent``/``NotificationFailed``) are in its own outbox.
- ``participants``: this service's projection of each registration's contact details,
  language and status (from the registration events), so it works while registration is
  down. Erased on ``PersonalDataErased``, leaving a tombstone so that a late event
  cannot bring the data back.
- ``events``: each event's details, state and reminder rules.
- ``reminders``: one per (event, offset, start time), due at an epoch time, claimed with a
  lease exactly like notifications.
- ``announcements``: an organiser's message to an event's participants and its fan-out.

Every write that leaves work behind is reported to the process's ``WriteSignal``: events
for the relay (``shared.outbox.save``/``insert`` do it), a notification to send now and
an announcement to fan out for this service's own workers (``ports.SEND``/``FAN_OUT``).
A ``ConnectionFailure`` leaves as ``MongoUnavailable``: a ``ports.StoreUnavailable`` for
the use cases and still a ``ConnectionFailure`` for the HTTP layer (503).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError

from services.notification.domain import (
    Announcement,
    Candidate,
    KnownEvent,
    Notification,
    Participant,
    Reminder,
)
from services.notification.ports import (
    ANNOUNCEMENTS,
    FAN_OUT,
    NOTIFICATIONS,
    REMIND,
    SEND,
    StoreUnavailable,
)
from shared.envelope import wrap
from shared.errors import DomainError
from shared.outbox import (
    ConcurrentUpdate,
    WriteSignal,
    ensure_outbox_indexes,
    new_document,
    save,
)
from shared.timeutil import iso

PARTICIPANTS = "participants"
EVENTS = "events"
REMINDERS = "reminders"

SERVICE = "notification"

# What a save writes of a notification: the state its methods change.
_MUTABLE = (
    "status",
    "attempts",
    "next_attempt_at",
    "lease_until",
    "last_error",
    "errors",
    "sent_at",
    "segments",
    "resend_count",
)
_NOT_STORED = ("rev", "events", "stored", "id")


class MongoUnavailable(StoreUnavailable, ConnectionFailure):
    """MongoDB did not answer (both the port's error and pymongo's)."""

    def __init__(self, message: str) -> None:
        ConnectionFailure.__init__(self, message)


def _reachable(method):
    """Translate pymongo's ConnectionFailure into the port's StoreUnavailable."""

    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except MongoUnavailable:
            raise
        except ConnectionFailure as exc:
            raise MongoUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from exc

    return wrapper


# --------------------------------------------------------------------------- documents


def notification_to_document(n: Notification) -> dict[str, Any]:
    fields = {k: v for k, v in asdict(n).items() if k not in _NOT_STORED}
    return new_document({"_id": n.id, **fields}, [wrap(e, SERVICE) for e in n.take_events()])


def notification_of(doc: dict[str, Any]) -> Notification:
    return Notification(
        id=doc["_id"],
        rev=int(doc.get("rev", 0)),
        channel=doc["channel"],
        recipient=doc["recipient"],
        template=doc["template"],
        language=doc["language"],
        context=doc.get("context") or {},
        attachments=list(doc.get("attachments") or []),
        registration_id=doc.get("registration_id"),
        resolution_id=doc.get("resolution_id"),
        event_id=doc.get("event_id"),
        announcement_id=doc.get("announcement_id"),
        cause_event_id=doc["cause_event_id"],
        cause_event_type=doc["cause_event_type"],
        status=doc["status"],
        attempts=int(doc.get("attempts", 0)),
        next_attempt_at=float(doc.get("next_attempt_at") or 0.0),
        lease_until=float(doc.get("lease_until") or 0.0),
        last_error=doc.get("last_error"),
        errors=list(doc.get("errors") or []),
        created_at=doc["created_at"],
        sent_at=doc.get("sent_at"),
        segments=doc.get("segments"),
        resend_count=int(doc.get("resend_count", 0)),
        erased=bool(doc.get("erased", False)),
        traceparent=doc.get("traceparent"),
        stored={"outbox": list(doc.get("outbox") or [])},
    )


def participant_of(doc: dict[str, Any]) -> Participant:
    return Participant(
        registration_id=doc["_id"],
        event_id=doc["event_id"],
        status=doc.get("status"),
        contact=doc.get("contact") or {},
        event=doc.get("event") or {},
        reference=doc.get("reference"),
        ticket=doc.get("ticket"),
        self_service_url=doc.get("self_service_url"),
        cadre=doc.get("cadre"),
        category=doc.get("category"),
        institution_code=doc.get("institution_code"),
    )


def reminder_of(doc: dict[str, Any]) -> Reminder:
    return Reminder(
        id=doc["_id"],
        event_id=doc["event_id"],
        offset_s=int(doc["offset_s"]),
        due_at=float(doc["due_at"]),
        status=doc.get("status", "pending"),
        notifications=int(doc.get("notifications", 0)),
    )


def announcement_of(doc: dict[str, Any]) -> Announcement:
    return Announcement(
        id=doc["_id"],
        event_id=doc["event_id"],
        cadre=doc.get("cadre"),
        statuses=list(doc.get("statuses") or ["confirmed"]),
        categories=list(doc.get("categories") or []),
        institution_codes=list(doc.get("institution_codes") or []),
        subject_sw=doc["subject_sw"],
        subject_en=doc["subject_en"],
        body_sw=doc["body_sw"],
        body_en=doc["body_en"],
        channels=list(doc["channels"]),
        targets=list(doc.get("targets") or []),
        total=int(doc.get("total", 0)),
        cursor=int(doc.get("cursor", 0)),
        status=doc.get("status", "fanning_out"),
        lease_until=float(doc.get("lease_until") or 0.0),
        created_at=doc["created_at"],
        completed_at=doc.get("completed_at"),
    )


def _in(values: Sequence[str]) -> Any:
    """A plain equality for one value, ``$in`` for more."""
    return values[0] if len(values) == 1 else {"$in": list(values)}


def _audience_query(
    event_id: str,
    statuses: Sequence[str],
    cadre: str | None,
    categories: Sequence[str],
    institution_codes: Sequence[str],
) -> dict[str, Any]:
    """Not erased participants of an event in ``statuses``, narrowed by cadre, category
    and institution (plain equality and ``$in`` only: docs/embedded-servers.md)."""
    query: dict[str, Any] = {
        "event_id": event_id,
        "status": _in(list(statuses)),
        "erased": {"$ne": True},
    }
    if cadre:
        query["cadre"] = cadre
    if categories:
        query["category"] = _in(list(categories))
    if institution_codes:
        query["institution_code"] = _in(list(institution_codes))
    return query


class MongoNotificationStore:
    """``ports.NotificationStore`` on MongoDB."""

    def __init__(self, db: AsyncDatabase, *, signal: WriteSignal) -> None:
        self.signal = signal
        self.db = db
        self.notifications = db[NOTIFICATIONS]
        self.participants = db[PARTICIPANTS]
        self.events = db[EVENTS]
        self.reminders = db[REMINDERS]
        self.announcements = db[ANNOUNCEMENTS]

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

    # -- the delivery log ---------------------------------------------------------------

    @_reachable
    async def add(self, notifications: Sequence[Notification]) -> int:
        """Insert new notifications; ones that exist already are left as they are.

        Each new one is reported (``SEND``), so this process's senders take it by
        ``_id`` without querying the whole log."""
        if not notifications:
            return 0
        docs = [notification_to_document(n) for n in notifications]
        try:
            await self.notifications.insert_many(docs, ordered=False)
            inserted = docs
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            refused = {e.get("index") for e in errors}
            inserted = [d for i, d in enumerate(docs) if i not in refused]
        except DuplicateKeyError:
            inserted = []
        for doc in inserted:
            if doc.get("outbox"):
                self.signal.written(NOTIFICATIONS, doc["_id"])
            self.signal.written(NOTIFICATIONS, doc["_id"], work=SEND)
        return len(inserted)

    @_reachable
    async def get(self, notification_id: str) -> Notification | None:
        doc = await self.notifications.find_one({"_id": notification_id})
        return notification_of(doc) if doc is not None else None

    @_reachable
    async def save(self, notification: Notification) -> Notification:
        n = notification
        stored = {"_id": n.id, "rev": n.rev, "outbox": (n.stored or {}).get("outbox") or []}
        changes = {k: getattr(n, k) for k in _MUTABLE}
        changes["errors"] = list(n.errors)
        events = [wrap(e, SERVICE) for e in n.events]
        try:
            written = await save(self.notifications, stored, changes, events, signal=self.signal)
        except ConcurrentUpdate as exc:
            raise DomainError(
                "concurrent_update", "The notification changed meanwhile; try again."
            ) from exc
        n.take_events()
        n.rev = written["rev"]
        n.stored = {"outbox": written.get("outbox") or stored["outbox"]}
        if n.status == "pending":  # resent: due now
            self.signal.written(NOTIFICATIONS, n.id, work=SEND)
        return n

    @_reachable
    async def claim(
        self, candidate: Candidate, *, lease_s: float, now: datetime
    ) -> Notification | None:
        """One round trip: claimed only if still as it was seen (status and lease); the
        change is ``Notification.claim``'s, made atomically here."""
        at = now.timestamp()
        doc = await self.notifications.find_one_and_update(
            {
                "_id": candidate.id,
                "status": candidate.status,
                "lease_until": candidate.lease_until,
            },
            {
                "$set": {"status": "sending", "lease_until": at + lease_s},
                "$inc": {"attempts": 1, "rev": 1},
            },
            return_document=ReturnDocument.AFTER,
        )
        return notification_of(doc) if doc is not None else None

    @_reachable
    async def due(self, limit: int, now: datetime) -> list[Candidate]:
        """One query on the status (indexed on MongoDB); the choice is made here, and
        each claim is conditioned on what was read. On the embedded server this reads
        the whole collection: the senders run it only now and then."""
        at = now.timestamp()
        candidates = await self.notifications.find(
            {"status": {"$in": ["pending", "retry", "sending"]}},
            {"status": 1, "next_attempt_at": 1, "lease_until": 1},
        ).to_list()
        ready = [
            c
            for c in candidates
            if (
                c.get("status") in ("pending", "retry")
                and float(c.get("next_attempt_at") or 0) <= at
            )
            or (c.get("status") == "sending" and float(c.get("lease_until") or 0) < at)
        ]
        ready.sort(key=lambda c: float(c.get("next_attempt_at") or 0))
        return [Candidate(c["_id"], c["status"], c.get("lease_until", 0.0)) for c in ready[:limit]]

    @_reachable
    async def list_notifications(self, filters: dict[str, str], limit: int) -> list[Notification]:
        docs = await self.notifications.find(
            dict(filters), sort=[("created_at", DESCENDING)], limit=limit
        ).to_list()
        return [notification_of(d) for d in docs]

    @_reachable
    async def statuses_of_announcement(self, announcement_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        cursor = self.notifications.find({"announcement_id": announcement_id}, {"status": 1})
        async for n in cursor:
            counts[n["status"]] = counts.get(n["status"], 0) + 1
        return counts

    # -- the participants' projection -----------------------------------------------------

    @_reachable
    async def upsert_participant(
        self, registration_id: str, fields: dict[str, Any], *, event_time: str | None
    ) -> bool:
        """Read, decide, then write conditioned on what was read. No ``$or`` and no
        ``$ne`` in the update filter: on the embedded server an ``$or`` beside ``_id`` can
        match another document, and ``$ne`` never matches a missing field in an update.
        """
        for _ in range(10):
            doc = await self.participants.find_one({"_id": registration_id})
            stamped = {**fields, **({"last_event_time": event_time} if event_time else {})}
            if doc is None:
                try:
                    await self.participants.insert_one({**stamped, "_id": registration_id})
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

    @_reachable
    async def upsert_participants(
        self, updates: Sequence[tuple[str, dict[str, Any], str | None]]
    ) -> list[bool]:
        """The same decisions as ``upsert_participant``, for many at once: one read of
        them all by ``_id``, then one unordered ``bulk_write`` of the inserts and the
        conditional updates. A registration named twice is decided again after the
        first (in waves, keeping their order); an insert refused as a duplicate (another
        instance) or updates that did not all match (a write in between) are decided
        again one by one."""
        answers: list[bool] = [False] * len(updates)
        pending = list(range(len(updates)))
        while pending:
            wave: dict[str, int] = {}
            later: list[int] = []
            for index in pending:
                rid = updates[index][0]
                if rid in wave:
                    later.append(index)
                else:
                    wave[rid] = index
            pending = later
            docs = {d["_id"]: d async for d in self.participants.find({"_id": {"$in": list(wave)}})}
            ops: list[Any] = []
            placed: list[int] = []  # the update index of each op
            for rid, index in wave.items():
                _, fields, event_time = updates[index]
                stamped = {**fields, **({"last_event_time": event_time} if event_time else {})}
                doc = docs.get(rid)
                if doc is None:
                    ops.append(InsertOne({**stamped, "_id": rid}))
                    placed.append(index)
                    continue
                last = doc.get("last_event_time")
                if doc.get("erased") or (
                    event_time is not None and last is not None and last > event_time
                ):
                    answers[index] = False
                    continue
                flt: dict[str, Any] = {"_id": rid}
                if last is not None:
                    flt["last_event_time"] = last
                ops.append(UpdateOne(flt, {"$set": stamped}))
                placed.append(index)
            if not ops:
                continue
            again: list[int] = []
            try:
                result = await self.participants.bulk_write(ops, ordered=False)
                refused: set[int] = set()
                matched = result.matched_count
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                refused = {e["index"] for e in errors}
                matched = exc.details.get("nMatched", 0)
            n_updates = sum(1 for op in ops if isinstance(op, UpdateOne))
            for op_index, index in enumerate(placed):
                is_update = isinstance(ops[op_index], UpdateOne)
                if op_index in refused or (is_update and matched < n_updates):
                    again.append(index)
                else:
                    answers[index] = True
            for index in again:  # rare: decided again, alone
                rid, fields, event_time = updates[index]
                answers[index] = await self.upsert_participant(rid, fields, event_time=event_time)
        return answers

    @_reachable
    async def erase_participant(self, registration_id: str, event_id: str, now: datetime) -> None:
        await self.participants.replace_one(
            {"_id": registration_id},
            {"_id": registration_id, "event_id": event_id, "erased": True, "erased_at": iso(now)},
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

    @_reachable
    async def erase_recipient(self, recipient: str, now: datetime) -> int:
        await self.notifications.update_many(
            {"recipient": recipient, "status": {"$in": ["pending", "retry"]}},
            {"$set": {"status": "cancelled", "last_error": "personal data erased"}},
        )
        result = await self.notifications.update_many(
            {"recipient": recipient},
            {
                "$set": {"recipient": "[erased]", "context": {}, "erased": True},
                "$inc": {"rev": 1},
            },
        )
        return int(result.matched_count)

    @_reachable
    async def active_participants(
        self,
        event_id: str,
        *,
        cadre: str | None = None,
        ids: Sequence[str] | None = None,
        statuses: tuple[str, ...] = ("confirmed",),
        categories: Sequence[str] = (),
        institution_codes: Sequence[str] = (),
    ) -> list[Participant]:
        query = _audience_query(event_id, statuses, cadre, categories, institution_codes)
        if ids is not None:
            query["_id"] = {"$in": list(ids)}
        docs = await self.participants.find(query, sort=[("_id", ASCENDING)]).to_list()
        return [participant_of(d) for d in docs]

    @_reachable
    async def count_participants(
        self,
        event_id: str,
        *,
        cadre: str | None = None,
        statuses: tuple[str, ...] = ("confirmed",),
        categories: Sequence[str] = (),
        institution_codes: Sequence[str] = (),
    ) -> int:
        query = _audience_query(event_id, statuses, cadre, categories, institution_codes)
        return int(await self.participants.count_documents(query))

    # -- events and reminders ---------------------------------------------------------------

    @_reachable
    async def get_event(self, event_id: str) -> KnownEvent | None:
        doc = await self.events.find_one({"_id": event_id})
        if doc is None:
            return None
        return KnownEvent(
            event_id=event_id,
            details=doc.get("event"),
            state=doc.get("state") or "published",
            rules=doc.get("rules"),
        )

    @_reachable
    async def remember_event(
        self, details: dict[str, Any], *, state: str | None, now: datetime
    ) -> None:
        event_id = details["event_id"]
        fields: dict[str, Any] = {"updated_at": iso(now)}
        on_insert: dict[str, Any] = {"rules": None}
        if state is not None:
            fields["state"] = state
            fields["event"] = details
        else:
            # From a registration: details only fill in an event not heard of yet.
            on_insert["event"] = details
            on_insert["state"] = "published"
        await self.events.update_one(
            {"_id": event_id}, {"$set": fields, "$setOnInsert": on_insert}, upsert=True
        )
        if state is None:
            # The document may exist with rules only (set before any event was seen).
            await self.events.update_one(
                {"_id": event_id, "event": {"$exists": False}},
                {"$set": {"event": details, "state": "published"}},
            )

    @_reachable
    async def set_reminder_rules(
        self, event_id: str, offsets_s: list[int] | None, now: datetime
    ) -> None:
        await self.events.update_one(
            {"_id": event_id},
            {"$set": {"rules": offsets_s, "updated_at": iso(now)}},
            upsert=True,
        )

    @_reachable
    async def reminders_of(self, event_id: str) -> list[Reminder]:
        docs = await self.reminders.find({"event_id": event_id}, sort=[("due_at", 1)]).to_list()
        return [reminder_of(d) for d in docs]

    @_reachable
    async def schedule_reminders(
        self, event_id: str, wanted: Sequence[Reminder], now: datetime
    ) -> int:
        wanted_ids = [r.id for r in wanted]
        await self.reminders.update_many(
            {"event_id": event_id, "status": "pending", "_id": {"$nin": wanted_ids}},
            {"$set": {"status": "cancelled", "cancelled_at": iso(now)}},
        )
        created = 0
        for r in wanted:
            try:
                await self.reminders.insert_one(
                    {
                        "_id": r.id,
                        "event_id": r.event_id,
                        "offset_s": r.offset_s,
                        "due_at": r.due_at,
                        "status": "pending",
                        "lease_until": 0.0,
                        "created_at": iso(now),
                        "fired_at": None,
                        "notifications": 0,
                    }
                )
                created += 1
                self.signal.written(REMINDERS, r.due_at, work=REMIND)
            except DuplicateKeyError:
                pass
        return created

    @_reachable
    async def claim_reminder(self, *, lease_s: float, now: datetime) -> Reminder | None:
        at = now.timestamp()
        doc = await self.reminders.find_one_and_update(
            {
                "$or": [
                    {"status": "pending", "due_at": {"$lte": at}},
                    {"status": "firing", "lease_until": {"$lt": at}},
                ]
            },
            {"$set": {"status": "firing", "lease_until": at + lease_s, "claimed_at": iso(now)}},
            sort=[("due_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return reminder_of(doc) if doc is not None else None

    @_reachable
    async def reminder_fired(self, reminder_id: str, notifications: int, now: datetime) -> None:
        await self.reminders.update_one(
            {"_id": reminder_id},
            {"$set": {"status": "done", "fired_at": iso(now), "notifications": notifications}},
        )

    # -- announcements ------------------------------------------------------------------

    @_reachable
    async def add_announcement(self, announcement: Announcement) -> None:
        fields = {k: v for k, v in asdict(announcement).items() if k != "id"}
        await self.announcements.insert_one(new_document({"_id": announcement.id, **fields}))
        if announcement.status == "fanning_out":
            self.signal.written(ANNOUNCEMENTS, announcement.id, work=FAN_OUT)

    @_reachable
    async def get_announcement(self, announcement_id: str) -> Announcement | None:
        doc = await self.announcements.find_one({"_id": announcement_id})
        return announcement_of(doc) if doc is not None else None

    @_reachable
    async def claim_announcement(self, *, lease_s: float, now: datetime) -> Announcement | None:
        at = now.timestamp()
        doc = await self.announcements.find_one_and_update(
            {"status": "fanning_out", "lease_until": {"$lt": at}},
            {"$set": {"lease_until": at + lease_s}, "$inc": {"rev": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return announcement_of(doc) if doc is not None else None

    @_reachable
    async def save_announcement_progress(self, announcement: Announcement) -> None:
        a = announcement
        await self.announcements.update_one(
            {"_id": a.id},
            {
                "$set": {
                    "cursor": a.cursor,
                    "lease_until": a.lease_until,
                    "status": a.status,
                    "completed_at": a.completed_at,
                }
            },
        )
