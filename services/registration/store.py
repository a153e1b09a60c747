"""The registration service's MongoDB: events, registrations, idempotency keys.

The only module of the service that touches MongoDB. ``MongoRegistrationStore``
implements the ``ports.RegistrationStore`` port: it builds the ``Event`` and
``Registration`` aggregates from their documents and saves an aggregate as its fields
plus the events it recorded, in one revision-checked single-document write (the outbox
lives in the document), reporting the write to the service's ``WriteSignal``.

Seats are counted on the event document with a conditional ``$inc`` (never a
count-then-write), so confirmed registrations cannot exceed capacity under any
concurrency; a save of the event never writes the counters. The same update counts a
category's confirmed seats (``category_taken.<code>``) and holds its quota and the seats
other categories' quotas still reserve; a limited choice of a question has its own
counter (``choice_taken.<question>.<choice>``). The limits those conditions read
(``quotas``, ``choice_limits``) are written by each save of the event, from its
categories and questions.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from pydantic_core import to_jsonable_python
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from services.registration.domain import (
    ACTIVE_STATUSES,
    DEFAULT_CATEGORIES,
    Category,
    Certificate,
    CertificateSettings,
    EvaluationForm,
    EvaluationResponse,
    Event,
    Institution,
    InstitutionSignIn,
    Question,
    Registration,
    RegistrationSort,
    name_sort_key,
)
from services.registration.ports import AddOutcome, EventChanged, IdempotencyRecord
from shared import outbox
from shared.aggregate import Aggregate
from shared.envelope import wrap
from shared.errors import DomainError
from shared.outbox import WriteSignal, ensure_outbox_indexes
from shared.timeutil import epoch

SERVICE = "registration"
EVENTS = "events"
REGISTRATIONS = "registrations"
IDEMPOTENCY = "idempotency_keys"
# Certificates and evaluation (issue 16): certificates and responses carry their outboxes.
CERTIFICATES = "certificates"
CERTIFICATE_SETTINGS = "certificate_settings"
EVALUATION_FORMS = "evaluation_forms"
EVALUATION_RESPONSES = "evaluation_responses"

# Kept out of a participant's own export: bookkeeping, not data about them.
INTERNAL_FIELDS = {
    "manage_token_hash",
    "idempotency_key",
    "outbox",
    "outbox_pending",
    "outbox_lease_until",
    "outbox_claim",
    "rev",
    "name_key",
}
_EVENT_COUNTERS = ("seats_taken", "waitlist_seq", "category_taken", "choice_taken", "committed")
_EVENT_TIMES = ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at")
# Written only once they happened (a registration never approved has no approved_at).
_REGISTRATION_LATER = (
    "resend_requested_at",
    "promoted_at",
    "approved_at",
    "approved_by",
    "rejected_at",
    "rejected_by",
    "rejection_reason",
    "cancelled_at",
    "cancelled_by",
    "erased_at",
    "erasure_reason",
)
_NOT_STORED = {"rev", "events", "id"}
_EVENT_FIELDS = [f.name for f in fields(Event) if f.name not in _NOT_STORED]
_REGISTRATION_FIELDS = [f.name for f in fields(Registration) if f.name not in _NOT_STORED]
# A list shows no outbox and no token hash.
_LIST_PROJECTION = {"outbox": 0, "manage_token_hash": 0}


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


# -- documents <-> aggregates ----------------------------------------------------------
# The outbox as read is kept beside the aggregate (not in it: the domain knows nothing of
# outboxes), so that a save appends the new events to it in the same revision-checked write.


def _remember(aggregate: Aggregate, doc: dict[str, Any]) -> None:
    aggregate.__dict__["_stored_outbox"] = list(doc.get("outbox") or [])


def _stored_outbox(aggregate: Aggregate) -> list[dict[str, Any]]:
    return aggregate.__dict__.get("_stored_outbox", [])


def event_of(doc: dict[str, Any]) -> Event:
    values = {name: doc[name] for name in _EVENT_FIELDS if name in doc}
    for name in _EVENT_TIMES:
        if name in values:
            values[name] = _time(values[name])
    values["admitted_cadres"] = list(values.get("admitted_cadres") or [])
    # An event stored before categories were data has the five default ones.
    values["categories"] = [
        Category.model_validate(c) for c in doc.get("categories") or DEFAULT_CATEGORIES
    ]
    values["questions"] = [Question.model_validate(q) for q in doc.get("questions") or []]
    values["category_taken"] = {k: int(v) for k, v in (doc.get("category_taken") or {}).items()}
    values["committed"] = int(doc["committed"]) if doc.get("committed") is not None else None
    values["choice_taken"] = {
        q: {c: int(n) for c, n in (picks or {}).items()}
        for q, picks in (doc.get("choice_taken") or {}).items()
    }
    event = Event(id=doc["_id"], rev=int(doc.get("rev", 0)), **values)
    _remember(event, doc)
    event.__dict__["_read_categories"] = [c.code for c in values["categories"]]
    return event


def event_fields(event: Event) -> dict[str, Any]:
    """The stored fields an event's save writes (never the seat counters), with the limits
    the counters' conditions read."""
    stored = {
        name: to_jsonable_python(getattr(event, name))
        for name in _EVENT_FIELDS
        if name not in _EVENT_COUNTERS
    }
    stored["quotas"] = event.quotas
    stored["choice_limits"] = event.choice_limits
    return stored


def _new_counters(event: Event) -> dict[str, int]:
    """The counters a save writes: ``committed`` as the new categories make it (from the
    counters as read, which the save's compare-and-set holds), and 0 for what the save
    introduces (a new category, a newly limited choice): nobody could move those before
    (an unknown category takes no seat, an unlimited choice counts no places)."""
    fresh = {"committed": event.committed_seats()}
    read = set(event.__dict__.get("_read_categories", ()))
    for category in event.categories:
        if category.code not in read and category.code not in event.category_taken:
            fresh[f"category_taken.{category.code}"] = 0
    for qid, limits in event.choice_limits.items():
        for code in limits:
            if code not in event.choice_taken.get(qid, {}):
                fresh[f"choice_taken.{qid}.{code}"] = 0
    return fresh


def _compare_and_set(expected: dict[str, int | None]) -> dict[str, Any]:
    """Plain filters that the counters still hold these values (None: not written yet).

    Only equalities: the embedded server mis-evaluates an ``$expr`` with nested operators
    beside ``_id`` (it can match another document), so every ``$expr`` here is one plain
    comparison of two fields."""
    return {
        path: {"$exists": False} if value is None else value for path, value in expected.items()
    }


def registration_of(doc: dict[str, Any]) -> Registration:
    values = {name: doc[name] for name in _REGISTRATION_FIELDS if name in doc}
    values["checkins"] = dict(values.get("checkins") or {})
    values["consent"] = dict(values.get("consent") or {})
    values["accessibility_needs"] = list(values.get("accessibility_needs") or [])
    # Registered before categories were data: the cadre was the category.
    values["category"] = values.get("category") or values.get("cadre") or ""
    values["answers"] = dict(values.get("answers") or {})
    registration = Registration(id=doc["_id"], rev=int(doc.get("rev", 0)), **values)
    _remember(registration, doc)
    return registration


def registration_fields(registration: Registration) -> dict[str, Any]:
    stored = {}
    for name in _REGISTRATION_FIELDS:
        value = getattr(registration, name)
        if value is None and name in _REGISTRATION_LATER:
            continue
        stored[name] = to_jsonable_python(value)
    # The name sort's key, derived from the name at every write (so an erasure, which
    # blanks the name, blanks it too): no collation on the embedded server.
    stored["name_key"] = name_sort_key(registration.full_name)
    return stored


# The organisers' list orders: the keyset fields of each sort (the last one unique) and
# their direction. ``created`` is the order of the CSV export.
_SORT_FIELDS: dict[str, tuple[tuple[str, ...], int]] = {
    "created": (("created_us", "_id"), ASCENDING),
    "-created": (("created_us", "_id"), DESCENDING),
    "name": (("name_key", "created_us", "_id"), ASCENDING),
    "status": (("status", "created_us", "_id"), ASCENDING),
}


def keyset_after(names: tuple[str, ...], values: tuple[Any, ...], direction: int) -> dict[str, Any]:
    """Documents strictly after ``values`` in the order of ``names``: a plain ``$or`` of
    equalities on a prefix and one ``$gt`` (``$lt`` descending) on the next field."""
    op = "$gt" if direction == ASCENDING else "$lt"
    branches = []
    for i, name in enumerate(names):
        branch: dict[str, Any] = dict(zip(names[:i], values[:i], strict=True))
        branch[name] = {op: values[i]}
        branches.append(branch)
    return {"$or": branches}


def _messages(aggregate: Aggregate) -> list[outbox.OutboxMessage]:
    return [wrap(e, SERVICE) for e in aggregate.take_events()]


def _identity(aggregate: Aggregate, doc_id: str) -> dict[str, Any]:
    """What ``outbox.update_spec`` needs of the document as it was read."""
    return {"_id": doc_id, "rev": aggregate.rev, "outbox": _stored_outbox(aggregate)}


def _after_save(aggregate: Aggregate, update: dict[str, Any]) -> None:
    aggregate.rev += 1
    _remember(aggregate, {"outbox": update["$set"].get("outbox", _stored_outbox(aggregate))})


def _idempotency_record(doc: dict[str, Any]) -> IdempotencyRecord:
    outcome = doc.get("outcome")
    if outcome is None and doc.get("state") == "done" and "status" in doc:
        # A record written before outcomes were stored: the HTTP answer itself.
        body = doc.get("response") or {}
        if doc["status"] == 201:
            outcome = {"registration": body}
        else:
            error = body.get("error") or {}
            problems = error.get("fields") or []
            outcome = {
                "error": {
                    "code": error.get("code", "error"),
                    "message": error.get("message", ""),
                    "field": problems[0]["field"] if problems else None,
                    "details": error.get("details"),
                }
            }
    return IdempotencyRecord(
        request_hash=doc.get("request_hash", ""),
        done=doc.get("state") == "done",
        outcome=outcome,
    )


# The last event documents this process read, for registrations (``registering_event``):
# the seat's conditional write checks that each is still the stored one.
_RECENT_EVENTS = 256


class GroupInsert:
    """Group commit: the documents handed in while a write is under way are inserted
    together, as one ``insert_many(ordered=False)``, once it is done.

    A document handed in when nothing is being written goes out at once (after
    ``window_s``, 0 by default: one turn of the event loop), so a lone request waits for
    nothing; under load the batches grow by themselves, up to ``max_batch``. Each caller
    is answered only once its own document is stored, or with its own error (a
    ``DuplicateKeyError`` for that document alone: the others of the batch are stored).
    """

    def __init__(
        self,
        collection: Any,
        signal: WriteSignal,
        *,
        window_s: float = 0.0,
        max_batch: int = 200,
    ) -> None:
        self._collection = collection
        self._signal = signal
        self._window = window_s
        self._max = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # how many writes (for tests and the bench's notes)

    async def insert(self, doc: dict[str, Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((doc, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        await future

    async def _write_all(self) -> None:
        batch: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        try:
            await asyncio.sleep(self._window)
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                await self._write(batch)
        except asyncio.CancelledError:  # shutting down: nobody is left waiting forever
            for _, future in batch + self._queue:
                future.cancel()
            self._queue = []
            raise
        finally:
            self._writer = None
            if self._queue:  # handed in while the writer ended
                self._writer = asyncio.create_task(self._write_all())

    async def _write(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        self.batches += 1
        failed: dict[int, BaseException] = {}
        try:
            await self._collection.insert_many([doc for doc, _ in batch], ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors") or []:
                cls = DuplicateKeyError if error.get("code") == 11000 else OperationFailure
                # As insert_one reports it: without the document ("op"), whose fields
                # would make every duplicate read as a taken reference.
                details = {k: v for k, v in error.items() if k != "op"}
                failed[int(error["index"])] = cls(
                    error.get("errmsg", ""), error.get("code"), details
                )
            if not failed:  # a write concern error: nobody knows what was stored
                failed = dict.fromkeys(range(len(batch)), exc)
        except Exception as exc:  # the server went away: every request fails, as alone
            failed = dict.fromkeys(range(len(batch)), exc)
        for index, (doc, future) in enumerate(batch):
            if index in failed:
                if not future.done():
                    future.set_exception(failed[index])
                continue
            if doc.get("outbox"):
                self._signal.written(self._collection.name, doc["_id"])
            if not future.done():
                future.set_result(None)


# Registrations stored before categories were data count under their cadre, as self.
_GROUPED = {
    "category": {"$ifNull": ["$category", "$cadre"]},
    "via": {"$ifNull": ["$via", "self"]},
}


class MongoRegistrationStore:
    """The ``RegistrationStore`` port on MongoDB."""

    def __init__(
        self,
        db: AsyncDatabase,
        *,
        signal: WriteSignal | None = None,
        group_commit_window_s: float = 0.0,
        group_commit_max: int = 200,
    ) -> None:
        # Reported after each write that leaves events to publish (the relay listens).
        self.signal = signal or WriteSignal()
        self.db = db
        self.events = db[EVENTS]
        self.registrations = db[REGISTRATIONS]
        # New registrations go in together (group commit); see GroupInsert.
        self.new_registrations = GroupInsert(
            self.registrations,
            self.signal,
            window_s=group_commit_window_s,
            max_batch=group_commit_max,
        )
        self._recent_events: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.idempotency = db[IDEMPOTENCY]
        self.certificates = db[CERTIFICATES]
        self.certificate_settings = db[CERTIFICATE_SETTINGS]
        self.evaluation_forms = db[EVALUATION_FORMS]
        self.evaluation_responses = db[EVALUATION_RESPONSES]

    async def ensure_indexes(self) -> None:
        await self.registrations.create_index(
            [("event_id", ASCENDING), ("email", ASCENDING)], unique=True
        )
        await self.registrations.create_index([("reference", ASCENDING)], unique=True)
        await self.registrations.create_index(
            [("event_id", ASCENDING), ("status", ASCENDING), ("waitlist_position", ASCENDING)]
        )
        # Organisers' lists page by (created_us, _id) within an event. A number, not the
        # ISO string: range queries on ISO-looking strings are unreliable on nx-27017.
        await self.registrations.create_index([("event_id", ASCENDING), ("created_us", ASCENDING)])
        # ... or by name (the derived ``name_key``) or status, then oldest first.
        await self.registrations.create_index(
            [("event_id", ASCENDING), ("name_key", ASCENDING), ("created_us", ASCENDING)]
        )
        await self.registrations.create_index(
            [("event_id", ASCENDING), ("status", ASCENDING), ("created_us", ASCENDING)]
        )
        await self.backfill_name_keys()
        await self.registrations.create_index([("idempotency_key", ASCENDING)])
        await self.events.create_index([("code", ASCENDING)], unique=True)
        await ensure_outbox_indexes(self.events)
        await ensure_outbox_indexes(self.registrations)
        await self.ensure_certificate_indexes()

    # -- events --------------------------------------------------------------------

    async def get_event(self, event_id: str) -> Event | None:
        doc = await self.events.find_one({"_id": event_id})
        if doc is not None and "committed" not in doc:
            doc = await self._count_categories(doc)
        if doc is None:
            self._recent_events.pop(event_id, None)
            return None
        self._remember_event(doc)
        return event_of(doc)

    def _remember_event(self, doc: dict[str, Any]) -> None:
        if "committed" not in doc:
            return
        self._recent_events[doc["_id"]] = doc
        self._recent_events.move_to_end(doc["_id"])
        while len(self._recent_events) > _RECENT_EVENTS:
            self._recent_events.popitem(last=False)

    async def registering_event(self, event_id: str) -> Event | None:
        """The event as this process read it last (no round trip), else as stored. Its
        counters may be old: only ``registration_seat`` relies on it, and its write checks the
        revision and state (``EventChanged``)."""
        doc = self._recent_events.get(event_id)
        if doc is None:
            return await self.get_event(event_id)
        return event_of(doc)

    async def _count_categories(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        """An event stored before categories were data: count its confirmed seats per
        category (its cadres) and its committed seats, once (compare-and-set on the seat
        counter; a registration meanwhile makes it count again)."""
        for _ in range(20):
            event = event_of(doc)
            confirmed = await self.count_by_category(event.id, ("confirmed",))
            event.category_taken = {c.code: confirmed.get(c.code, 0) for c in event.categories}
            counts = {
                "category_taken": event.category_taken,
                "choice_taken": doc.get("choice_taken") or {},
                "committed": event.committed_seats(),
            }
            await self.events.update_one(
                {
                    "_id": event.id,
                    "seats_taken": event.seats_taken,
                    "committed": {"$exists": False},
                },
                {"$set": counts},
            )
            doc = await self.events.find_one({"_id": event.id})
            if doc is None or "committed" in doc:
                return doc
        return doc

    async def list_events(self, state: str | None = "published") -> list[Event]:
        query = {"state": state} if state else {}
        docs = await self.events.find(query, sort=[("starts_at", ASCENDING)]).to_list()
        return [event_of(d) for d in docs]

    async def event_ids(self, states: Sequence[str]) -> list[str]:
        cursor = self.events.find({"state": {"$in": list(states)}}, projection={"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def add_event(self, event: Event) -> None:
        fields_ = {
            "_id": event.id,
            **event_fields(event),
            "seats_taken": 0,
            "waitlist_seq": 0,
            "category_taken": {c.code: 0 for c in event.categories},
            "choice_taken": {
                q: {c: 0 for c in limits} for q, limits in event.choice_limits.items()
            },
            "committed": event.committed_seats(),
        }
        doc = outbox.new_document(fields_, _messages(event))
        try:
            await outbox.insert(self.events, doc, signal=self.signal)
        except DuplicateKeyError as exc:
            raise DomainError(
                "event_exists", "An event with this id or code exists already."
            ) from exc
        event.rev = 1
        _remember(event, doc)
        event.category_taken = dict(fields_["category_taken"])
        event.choice_taken = {q: dict(c) for q, c in fields_["choice_taken"].items()}
        event.committed = fields_["committed"]
        event.__dict__["_read_categories"] = [c.code for c in event.categories]

    async def save_event(self, event: Event) -> bool:
        messages = [wrap(e, SERVICE) for e in event.events]
        flt, update = outbox.update_spec(_identity(event, event.id), event_fields(event), messages)
        # The event's rules were checked against the counters as read: the write happens
        # only if none moved meanwhile (plain equalities: a compare-and-set), so a lowered
        # capacity, quota or choice limit never undercuts seats or places taken meanwhile.
        flt.update(_compare_and_set(dict(event.counters())))
        if event.committed is None:
            flt["committed"] = {"$exists": False}
        update["$set"].update(_new_counters(event))
        try:
            result = await self.events.update_one(flt, update)
        except DuplicateKeyError as exc:  # the unique index on codes decides, not a lookup
            raise DomainError(
                "event_code_taken", "Another event has this code.", field="code"
            ) from exc
        self._recent_events.pop(event.id, None)
        if result.matched_count != 1:
            return False
        event.take_events()
        _after_save(event, update)
        event.__dict__["_read_categories"] = [c.code for c in event.categories]
        event.committed = update["$set"]["committed"]
        if messages:
            self.signal.written(EVENTS, event.id)
        return True

    # -- seats -----------------------------------------------------------------------

    async def take_seat(self, event: Event, category: str) -> bool:
        """Atomically take one seat for a participant of ``category`` if one is left:
        within its quota if it has one (``category_taken`` below ``quotas``), else while
        the committed seats (see ``Event.committed_seats``) are below the capacity. Each
        is one conditional ``$inc`` of the event document."""
        return await self._take_seat(event, category, {})

    async def registration_seat(self, event: Event, category: str) -> bool:
        """``take_seat`` for a new registration, in the same one write checking that the
        event is still the one the registration decided on — its revision (moved by
        every save: an edit, a close, a cancellation) and its state — so the event needs
        no read of its own before it (``registering_event``) and a registration never
        takes a seat of an event cancelled or closed meanwhile. When nothing matched, one
        read (off the hot path) says why: no seat left (False), or the event changed
        (``EventChanged``: nothing was taken)."""
        if await self._take_seat(event, category, {"rev": event.rev, "state": event.state}):
            return True
        now = await self.events.find_one({"_id": event.id})
        if now is not None and "committed" in now:
            self._remember_event(now)
        else:
            self._recent_events.pop(event.id, None)
        if now is None or int(now.get("rev", 0)) != event.rev or now.get("state") != event.state:
            raise EventChanged(event.id)
        return False

    async def _take_seat(self, event: Event, category: str, same: dict[str, Any]) -> bool:
        # Plain equalities beside one plain $expr comparison: what nx-27017 evaluates right.
        if category in event.quotas:
            condition = ["$category_taken." + category, "$quotas." + category]
            moved = {"seats_taken": 1, f"category_taken.{category}": 1}
        else:
            condition = ["$committed", "$capacity"]
            moved = {"seats_taken": 1, "committed": 1, f"category_taken.{category}": 1}
        doc = await self.events.find_one_and_update(
            {"_id": event.id, **same, "$expr": {"$lt": condition}},
            {"$inc": moved},
            projection={"_id": 1},
            return_document=ReturnDocument.AFTER,
        )
        return doc is not None

    async def release_seat(self, event: Event, category: str) -> None:
        moved = {"seats_taken": -1, f"category_taken.{category}": -1}
        if category not in event.quotas:
            moved["committed"] = -1
        await self.events.update_one(
            {"_id": event.id, "seats_taken": {"$gt": 0}, f"category_taken.{category}": {"$gt": 0}},
            {"$inc": moved},
        )

    async def take_choice(self, event_id: str, question_id: str, choice: str) -> bool:
        """Atomically take one place on a limited choice if one is left."""
        path = f"{question_id}.{choice}"
        doc = await self.events.find_one_and_update(
            {
                "_id": event_id,
                "$expr": {"$lt": [f"$choice_taken.{path}", f"$choice_limits.{path}"]},
            },
            {"$inc": {f"choice_taken.{path}": 1}},
            projection={"_id": 1},
            return_document=ReturnDocument.AFTER,
        )
        return doc is not None

    async def release_choice(self, event_id: str, question_id: str, choice: str) -> None:
        path = f"choice_taken.{question_id}.{choice}"
        await self.events.update_one({"_id": event_id, path: {"$gt": 0}}, {"$inc": {path: -1}})

    async def set_counters(
        self, event_id: str, expected: dict[str, int | None], actual: dict[str, int]
    ) -> bool:
        """Repair counters (dotted paths: ``seats_taken``, ``committed``,
        ``category_taken.<code>``, ``choice_taken.<question>.<choice>``) only if nobody
        moved them since they were read (compare-and-set; None: not written yet)."""
        result = await self.events.update_one(
            {"_id": event_id, **_compare_and_set(expected)}, {"$set": dict(actual)}
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

    async def count_confirmed(self, event_id: str) -> int:
        return await self.registrations.count_documents(
            # pending_payment holds its seat too (issue 14)
            {"event_id": event_id, "status": {"$in": ["confirmed", "pending_payment"]}}
        )

    async def count_by_category(self, event_id: str, statuses: Sequence[str]) -> dict[str, int]:
        """Registrations in these statuses per category (``cadre`` for older ones)."""
        rows = await self.registrations.aggregate(
            [
                {"$match": {"event_id": event_id, "status": {"$in": list(statuses)}}},
                {"$group": {"_id": {"$ifNull": ["$category", "$cadre"]}, "count": {"$sum": 1}}},
            ]
        )
        return {str(row["_id"]): int(row["count"]) async for row in rows}

    async def active_answers(self, event_id: str) -> AsyncIterator[dict[str, Any]]:
        """The answers of the event's active registrations, one dict each."""
        cursor = self.registrations.find(
            {"event_id": event_id, "status": {"$in": list(ACTIVE_STATUSES)}},
            projection={"answers": 1},
            batch_size=500,
        )
        try:
            async for doc in cursor:
                yield dict(doc.get("answers") or {})
        finally:
            await cursor.close()

    # -- registrations -------------------------------------------------------------

    async def add_registration(self, registration: Registration) -> AddOutcome:
        # No lookup by email first: the unique index answers it, and a query on email
        # costs a scan per registration on the embedded server.
        fields_ = {"_id": registration.id, **registration_fields(registration)}
        doc = outbox.new_document(fields_, [wrap(e, SERVICE) for e in registration.events])
        try:
            await self.new_registrations.insert(doc)
        except DuplicateKeyError as exc:
            return "reference_taken" if "reference" in str(exc) else "email_taken"
        registration.take_events()
        registration.rev = 1
        _remember(registration, doc)
        return "added"

    async def save_registration(self, registration: Registration) -> bool:
        messages = [wrap(e, SERVICE) for e in registration.events]
        flt, update = outbox.update_spec(
            _identity(registration, registration.id), registration_fields(registration), messages
        )
        result = await self.registrations.update_one(flt, update)
        if result.matched_count != 1:
            return False
        registration.take_events()
        _after_save(registration, update)
        if messages:
            self.signal.written(REGISTRATIONS, registration.id)
        return True

    async def _one(self, query: dict[str, Any]) -> Registration | None:
        doc = await self.registrations.find_one(query)
        return registration_of(doc) if doc else None

    async def get_registration(self, registration_id: str) -> Registration | None:
        return await self._one({"_id": registration_id})

    async def find_by_reference(self, reference: str) -> Registration | None:
        return await self._one({"reference": reference})

    async def find_by_email(self, event_id: str, email: str) -> Registration | None:
        return await self._one({"event_id": event_id, "email": email})

    async def find_by_idempotency_key(self, key: str) -> Registration | None:
        return await self._one({"idempotency_key": key})

    async def waitlisted(self, event_id: str, limit: int = 500) -> list[Registration]:
        """The waiting list in order (the lowest positions first), up to ``limit``."""
        docs = await self.registrations.find(
            {"event_id": event_id, "status": "waitlisted"},
            sort=[("waitlist_position", ASCENDING)],
            limit=limit,
        ).to_list()
        return [registration_of(d) for d in docs]

    async def first_waitlisted(self, event_id: str) -> Registration | None:
        """The waitlisted registration with the lowest position (first come, first served)."""
        docs = await self.registrations.find(
            {"event_id": event_id, "status": "waitlisted"},
            sort=[("waitlist_position", ASCENDING)],
            limit=1,
        ).to_list()
        return registration_of(docs[0]) if docs else None

    async def active_registration_ids(self, event_id: str) -> list[str]:
        cursor = self.registrations.find(
            {"event_id": event_id, "status": {"$in": list(ACTIVE_STATUSES)}},
            projection={"_id": 1},
        )
        return [doc["_id"] async for doc in cursor]

    async def unerased_registration_ids(self, event_id: str) -> list[str]:
        cursor = self.registrations.find({"event_id": event_id, "erased_at": None}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def rotate_manage_token(self, registration_id: str, token_hash: str) -> None:
        # Moves the revision too: a save of the registration read before this one must
        # read again rather than write the old hash back.
        await self.registrations.update_one(
            {"_id": registration_id},
            {"$set": {"manage_token_hash": token_hash}, "$inc": {"rev": 1}},
        )

    # -- organisers' views ---------------------------------------------------------

    @staticmethod
    def registration_query(event_id: str, filters: dict[str, Any]) -> dict[str, Any]:
        """The query of a filtered list: exact filters plus case-insensitive free text."""
        query: dict[str, Any] = {"event_id": event_id}
        for name in (
            "status",
            "cadre",
            "category",
            "via",
            "institution_code",
            "institution",
            "region",
        ):
            if filters.get(name):
                query[name] = filters[name]
        text = filters.get("q")
        if text:
            pattern = {"$regex": re.escape(text), "$options": "i"}
            query["$or"] = [
                {"full_name": pattern},
                {"email": pattern},
                {"phone": pattern},
                {"institution": pattern},
                {"reference": pattern},
                {"position": pattern},
            ]
        return query

    async def page_registrations(
        self,
        event_id: str,
        filters: dict[str, Any],
        after: tuple[Any, ...] | None,
        limit: int,
        sort: RegistrationSort = "created",
    ) -> list[Registration]:
        """One page in a sort's order, after a keyset cursor (``domain.sort_key`` of the
        last item of the page before)."""
        names, direction = _SORT_FIELDS[sort]
        query = self.registration_query(event_id, filters)
        if after is not None:
            query = {"$and": [query, keyset_after(names, tuple(after), direction)]}
        docs = await self.registrations.find(
            query,
            projection=_LIST_PROJECTION,
            sort=[(name, direction) for name in names],
            limit=limit,
        ).to_list()
        return [registration_of(d) for d in docs]

    async def backfill_name_keys(self, *, batch_size: int = 500) -> int:
        """Give the registrations written before the name sort their ``name_key`` (once:
        every write since derives it). Each update holds only while the key is still
        missing, so that the key of a concurrent write (an erasure's) is never replaced."""
        done = 0
        while True:
            docs = await self.registrations.find(
                {"name_key": {"$exists": False}}, {"full_name": 1}, limit=batch_size
            ).to_list()
            if not docs:
                return done
            await self.registrations.bulk_write(
                [
                    UpdateOne(
                        {"_id": d["_id"], "name_key": {"$exists": False}},
                        {"$set": {"name_key": name_sort_key(str(d.get("full_name", "")))}},
                    )
                    for d in docs
                ],
                ordered=False,
            )
            done += len(docs)

    async def stream_registrations(
        self, event_id: str, filters: dict[str, Any], *, batch_size: int = 500
    ) -> AsyncIterator[Registration]:
        """Every matching registration through a server cursor, never all in memory."""
        cursor = self.registrations.find(
            self.registration_query(event_id, filters),
            projection=_LIST_PROJECTION,
            sort=[("created_us", ASCENDING), ("_id", ASCENDING)],
            batch_size=batch_size,
        )
        try:
            async for doc in cursor:
                yield registration_of(doc)
        finally:
            await cursor.close()

    async def statistics(self, event_id: str) -> dict[str, dict[str, int]]:
        """Counts by status, and of active registrations by cadre, category, via,
        institution, region."""
        result: dict[str, dict[str, int]] = {}
        for name in ("status", "cadre", "category", "via", "institution", "region"):
            match: dict[str, Any] = {"event_id": event_id}
            if name != "status":  # who is coming: leave out the cancelled and rejected
                match["status"] = {"$in": list(ACTIVE_STATUSES)}
            rows = await self.registrations.aggregate(
                [
                    {"$match": match},
                    {"$group": {"_id": _GROUPED.get(name, f"${name}"), "count": {"$sum": 1}}},
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

    async def personal_data(self, registration_id: str) -> dict[str, Any] | None:
        doc = await self.registrations.find_one({"_id": registration_id})
        if doc is None:
            return None
        data = {k: v for k, v in doc.items() if k not in INTERNAL_FIELDS and k != "_id"}
        data["id"] = doc["_id"]
        return data

    # -- idempotency keys ----------------------------------------------------------

    async def claim_idempotency_key(
        self, key: str, request_hash: str, now: str, *, lease_s: float = 10.0
    ) -> tuple[IdempotencyRecord | None, bool]:
        """Claim a key: ``(None, False)`` when new, ``(record, False)`` when used before.

        A pending claim older than ``lease_s`` belonged to a request that never finished
        (its process died, or MongoDB went away before it could release the key): it is
        taken over, ``(record, True)``, so that retries are not refused for ever.
        """
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
            doc = await self.idempotency.find_one({"_id": key})
        if doc is None:  # released meanwhile: the caller sees a fresh key next time
            return None, False
        if (
            doc.get("state") == "pending"
            and doc.get("request_hash") == request_hash
            and float(doc.get("claimed_at", 0)) < claimed_at - lease_s
        ):
            taken = await self.idempotency.update_one(
                {"_id": key, "state": "pending", "claimed_at": doc.get("claimed_at", 0)},
                {"$set": {"claimed_at": claimed_at}},
            )
            if taken.matched_count == 1:
                return _idempotency_record(doc), True
        return _idempotency_record(doc), False

    async def complete_idempotency_key(self, key: str, outcome: dict[str, Any]) -> None:
        await self.idempotency.update_one(
            {"_id": key}, {"$set": {"state": "done", "outcome": outcome}}
        )

    async def release_idempotency_key(self, key: str) -> None:
        await self.idempotency.delete_one({"_id": key, "state": "pending"})

    # -- certificates and evaluation (issue 16) ----------------------------------------

    async def ensure_certificate_indexes(self) -> None:
        await self.certificates.create_index([("serial", ASCENDING)], unique=True)
        # One certificate per registration and generation: issuing twice issues once.
        await self.certificates.create_index([("issue_key", ASCENDING)], unique=True)
        await self.certificates.create_index([("event_id", ASCENDING)])
        await self.certificates.create_index([("registration_id", ASCENDING)])
        await self.evaluation_responses.create_index([("event_id", ASCENDING)])
        await ensure_outbox_indexes(self.certificates)
        await ensure_outbox_indexes(self.evaluation_responses)

    async def _insert_with_events(
        self, collection: Any, name: str, aggregate: Aggregate, fields_: dict[str, Any]
    ) -> bool:
        doc = outbox.new_document(fields_, [wrap(e, SERVICE) for e in aggregate.events])
        try:
            await outbox.insert(collection, doc, signal=self.signal)
        except DuplicateKeyError:
            return False
        aggregate.take_events()
        aggregate.rev = 1
        _remember(aggregate, doc)
        return True

    async def _save_with_events(
        self, collection: Any, name: str, aggregate: Aggregate, doc_id: str, fields_: dict
    ) -> bool:
        messages = [wrap(e, SERVICE) for e in aggregate.events]
        flt, update = outbox.update_spec(_identity(aggregate, doc_id), fields_, messages)
        result = await collection.update_one(flt, update)
        if result.matched_count != 1:
            return False
        aggregate.take_events()
        _after_save(aggregate, update)
        if messages:
            self.signal.written(name, doc_id)
        return True

    async def add_certificate(self, certificate: Certificate) -> bool:
        fields_ = {
            "_id": certificate.id,
            "issue_key": certificate.issue_key,
            **_plain_fields(certificate),
        }
        return await self._insert_with_events(self.certificates, CERTIFICATES, certificate, fields_)

    async def save_certificate(self, certificate: Certificate) -> bool:
        return await self._save_with_events(
            self.certificates,
            CERTIFICATES,
            certificate,
            certificate.id,
            _plain_fields(certificate),
        )

    async def find_certificate(self, serial: str) -> Certificate | None:
        doc = await self.certificates.find_one({"serial": serial})
        return _certificate_of(doc) if doc else None

    async def _certificates(self, query: dict[str, Any]) -> list[Certificate]:
        # With the outbox: a save appends to the outbox as read.
        docs = await self.certificates.find(query).to_list()
        found = [_certificate_of(d) for d in docs]
        return sorted(found, key=lambda c: (c.registration_id, c.generation))

    async def event_certificates(self, event_id: str) -> list[Certificate]:
        return await self._certificates({"event_id": event_id})

    async def registration_certificates(self, registration_id: str) -> list[Certificate]:
        return await self._certificates({"registration_id": registration_id})

    async def _get_settings_doc(self, collection: Any, event_id: str) -> dict | None:
        return await collection.find_one({"_id": event_id})

    async def _upsert_checked(self, collection: Any, aggregate: Aggregate, doc_id: str) -> bool:
        fields_ = _plain_fields(aggregate)
        if aggregate.rev == 0:
            try:
                await collection.insert_one({"_id": doc_id, **fields_, "rev": 1})
            except DuplicateKeyError:
                return False
            aggregate.rev = 1
            return True
        result = await collection.update_one(
            {"_id": doc_id, "rev": aggregate.rev}, {"$set": fields_, "$inc": {"rev": 1}}
        )
        if result.matched_count != 1:
            return False
        aggregate.rev += 1
        return True

    async def get_certificate_settings(self, event_id: str) -> CertificateSettings | None:
        doc = await self._get_settings_doc(self.certificate_settings, event_id)
        return _aggregate_of(CertificateSettings, doc) if doc else None

    async def save_certificate_settings(self, settings: CertificateSettings) -> bool:
        return await self._upsert_checked(self.certificate_settings, settings, settings.event_id)

    async def get_evaluation_form(self, event_id: str) -> EvaluationForm | None:
        doc = await self._get_settings_doc(self.evaluation_forms, event_id)
        return _aggregate_of(EvaluationForm, doc) if doc else None

    async def save_evaluation_form(self, form: EvaluationForm) -> bool:
        return await self._upsert_checked(self.evaluation_forms, form, form.event_id)

    async def count_evaluation_answer(self, event_id: str) -> None:
        await self.evaluation_forms.update_one(
            {"_id": event_id}, {"$inc": {"answers_count": 1, "rev": 1}}
        )

    async def get_evaluation_response(self, response_id: str) -> EvaluationResponse | None:
        doc = await self.evaluation_responses.find_one({"_id": response_id})
        if doc is None:
            return None
        response = _aggregate_of(EvaluationResponse, doc, with_id=True)
        _remember(response, doc)
        return response

    async def add_evaluation_response(self, response: EvaluationResponse) -> bool:
        fields_ = {"_id": response.id, **_plain_fields(response)}
        return await self._insert_with_events(
            self.evaluation_responses, EVALUATION_RESPONSES, response, fields_
        )

    async def save_evaluation_response(self, response: EvaluationResponse) -> bool:
        return await self._save_with_events(
            self.evaluation_responses,
            EVALUATION_RESPONSES,
            response,
            response.id,
            _plain_fields(response),
        )

    async def event_evaluation_responses(self, event_id: str) -> list[EvaluationResponse]:
        docs = await self.evaluation_responses.find({"event_id": event_id}).to_list()
        responses = []
        for doc in docs:
            response = _aggregate_of(EvaluationResponse, doc, with_id=True)
            _remember(response, doc)
            responses.append(response)
        return responses


def _plain_fields(aggregate: Aggregate) -> dict[str, Any]:
    """The stored fields of a certificate, a setting or a response (not ``id``/``rev``)."""
    return {
        f.name: to_jsonable_python(getattr(aggregate, f.name))
        for f in fields(aggregate)
        if f.name not in _NOT_STORED
    }


def _aggregate_of(cls: type, doc: dict[str, Any], *, with_id: bool = False) -> Any:
    names = {f.name for f in fields(cls)} - _NOT_STORED
    values = {name: doc[name] for name in names if name in doc}
    if with_id:
        values["id"] = doc["_id"]
    return cls(rev=int(doc.get("rev", 0)), **values)


def _certificate_of(doc: dict[str, Any]) -> Certificate:
    certificate = _aggregate_of(Certificate, doc, with_id=True)
    _remember(certificate, doc)
    return certificate


# -- institutions (issue 13 B) -----------------------------------------------------------

INSTITUTIONS = "institutions"
SIGN_INS = "institution_sign_ins"
_INSTITUTION_FIELDS = [f.name for f in fields(Institution) if f.name not in _NOT_STORED]
_SIGN_IN_FIELDS = [f.name for f in fields(InstitutionSignIn) if f.name not in _NOT_STORED]
# A used or expired sign-in record is kept this long (then MongoDB's TTL monitor removes
# it): long enough to answer a reused link the same way, short of keeping who signed in.
SIGN_IN_KEPT_S = 86400


def institution_of(doc: dict[str, Any]) -> Institution:
    values = {name: doc[name] for name in _INSTITUTION_FIELDS if name in doc}
    values["contacts"] = [dict(c) for c in values.get("contacts") or []]
    institution = Institution(rev=int(doc.get("rev", 0)), **values)
    _remember(institution, doc)
    return institution


def sign_in_of(doc: dict[str, Any]) -> InstitutionSignIn:
    values = {name: doc[name] for name in _SIGN_IN_FIELDS if name in doc}
    sign_in = InstitutionSignIn(rev=int(doc.get("rev", 0)), **values)
    _remember(sign_in, doc)
    return sign_in


class MongoInstitutionStore:
    """The ``InstitutionStore`` port on MongoDB: the registry and the sign-in records."""

    def __init__(self, db: AsyncDatabase, *, signal: WriteSignal | None = None) -> None:
        self.signal = signal or WriteSignal()
        self.institutions = db[INSTITUTIONS]
        self.sign_ins = db[SIGN_INS]
        self.registrations = db[REGISTRATIONS]  # an institution's nominations (read only)

    async def ensure_indexes(self) -> None:
        # No index on contacts.email: the registry is small (hundreds), and nx-27017 answers
        # nothing to an array-field query once such a multikey index exists.
        await self.sign_ins.create_index([("expire_at", ASCENDING)], expireAfterSeconds=0)
        await self.sign_ins.create_index([("contact_id", ASCENDING)])
        await ensure_outbox_indexes(self.sign_ins)
        await self.registrations.create_index(
            [("event_id", ASCENDING), ("institution_code", ASCENDING)]
        )

    async def get_institution(self, code: str) -> Institution | None:
        doc = await self.institutions.find_one({"_id": code})
        return institution_of(doc) if doc else None

    async def list_institutions(
        self, *, kind: str | None = None, region: str | None = None
    ) -> list[Institution]:
        query: dict[str, Any] = {}
        if kind:
            query["kind"] = kind
        if region:
            query["region"] = region
        docs = await self.institutions.find(query, sort=[("_id", ASCENDING)]).to_list()
        return [institution_of(d) for d in docs]

    async def institutions_of_contact(self, email: str) -> list[Institution]:
        docs = await self.institutions.find({"contacts.email": email}).to_list()
        # Read again in Python: the answer must not lean on a server's array matching.
        return [
            institution_of(d)
            for d in docs
            if any(c.get("email") == email for c in d.get("contacts") or [])
        ]

    async def add_institution(self, institution: Institution) -> None:
        values = {
            name: to_jsonable_python(getattr(institution, name)) for name in _INSTITUTION_FIELDS
        }
        doc = outbox.new_document({"_id": institution.code, **values}, _messages(institution))
        try:
            await outbox.insert(self.institutions, doc, signal=self.signal)
        except DuplicateKeyError as exc:
            raise DomainError(
                "institution_exists", "An institution with this code exists already.", field="code"
            ) from exc
        institution.rev = 1
        _remember(institution, doc)

    async def save_institution(self, institution: Institution) -> bool:
        values = {
            name: to_jsonable_python(getattr(institution, name)) for name in _INSTITUTION_FIELDS
        }
        messages = _messages(institution)
        flt, update = outbox.update_spec(_identity(institution, institution.code), values, messages)
        result = await self.institutions.update_one(flt, update)
        if result.matched_count != 1:
            return False
        if messages:
            self.signal.written(INSTITUTIONS, institution.code)
        _after_save(institution, update)
        return True

    async def add_sign_in(self, sign_in: InstitutionSignIn) -> None:
        values = {name: getattr(sign_in, name) for name in _SIGN_IN_FIELDS}
        expire_at = _time(sign_in.expires_at)
        assert expire_at is not None
        doc = outbox.new_document(
            {
                "_id": sign_in.nonce_hash,
                **values,
                # A BSON date (the TTL monitor reads only those): when the record goes.
                "expire_at": expire_at + timedelta(seconds=SIGN_IN_KEPT_S),
            },
            _messages(sign_in),
        )
        await outbox.insert(self.sign_ins, doc, signal=self.signal)
        sign_in.rev = 1

    async def find_sign_in(self, nonce_hash: str) -> InstitutionSignIn | None:
        doc = await self.sign_ins.find_one({"_id": nonce_hash})
        return sign_in_of(doc) if doc else None

    async def consume_sign_in(self, nonce_hash: str, now: str) -> InstitutionSignIn | None:
        # One conditional write: of two requests with the same link, one finds it issued.
        claim = secrets.token_hex(8)
        doc = await self.sign_ins.find_one_and_update(
            {"_id": nonce_hash, "state": "issued"},
            {"$set": {"state": "used", "used_at": now, "claim": claim}, "$inc": {"rev": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None or doc.get("claim") != claim:
            return None
        return sign_in_of(doc)

    async def forget_sign_ins(self, contact_id: str) -> int:
        result = await self.sign_ins.delete_many({"contact_id": contact_id})
        return int(result.deleted_count)

    async def nominations(self, event_id: str, institution_code: str) -> list[Registration]:
        docs = await self.registrations.find(
            {"event_id": event_id, "institution_code": institution_code},
            projection=_LIST_PROJECTION,
            sort=[("created_us", ASCENDING), ("_id", ASCENDING)],
        ).to_list()
        return [registration_of(d) for d in docs]
