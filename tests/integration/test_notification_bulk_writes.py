"""The bulk writes of notification's batch mode on the real (embedded) MongoDB server.

What batch mode relies on, checked on the server it runs against: ``insert_many``
and ``bulk_write`` unordered report each refused document (its index and code 11000)
and still apply the rest; the projection of a batch is one read and one ``bulk_write``, with the decisions of one by one (new, updated, erased, older, named twice); the
consumers' idempotency record is read and written once per batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, InsertOne, UpdateOne, monitoring
from pymongo.errors import BulkWriteError

from services.notification.store import MongoNotificationStore
from shared.consumer import ProcessedEvents
from shared.envelope import ReceivedEvent
from shared.outbox import WriteSignal
from tests.stack import MongoServer, unique_suffix


class Commands(monitoring.CommandListener):
    """The commands sent on one collection, by name."""

    def __init__(self, collection: str) -> None:
        self.collection, self.names = collection, []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command.get(event.command_name) == self.collection:
            self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def db_env(mongo: MongoServer) -> AsyncIterator[dict[str, Any]]:
    commands = Commands("participants")
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, event_listeners=[commands])
    db = client[f"mkutano_bulk{unique_suffix()}"]
    try:
        yield {"db": db, "commands": commands}
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_unordered_bulk_writes_name_each_refused_document_and_apply_the_rest(
    db_env,
) -> None:
    col = db_env["db"]["things"]
    await col.insert_one({"_id": "b", "n": 0})
    with pytest.raises(BulkWriteError) as refused:
        await col.insert_many([{"_id": "a"}, {"_id": "b"}, {"_id": "c"}], ordered=False)
    errors = refused.value.details["writeErrors"]
    assert [(e["index"], e["code"]) for e in errors] == [(1, 11000)]
    assert sorted([d["_id"] async for d in col.find({})]) == ["a", "b", "c"]

    with pytest.raises(BulkWriteError) as mixed:
        await col.bulk_write(
            [
                InsertOne({"_id": "a"}),
                UpdateOne({"_id": "b", "n": 0}, {"$set": {"n": 1}}),
                UpdateOne({"_id": "c", "n": 5}, {"$set": {"n": 1}}),  # condition fails
                InsertOne({"_id": "d"}),
            ],
            ordered=False,
        )
    details = mixed.value.details
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(0, 11000)]
    assert details["nMatched"] == 1 and details["nInserted"] == 1
    assert (await col.find_one({"_id": "b"}))["n"] == 1
    assert (await col.find_one({"_id": "c"})).get("n") is None
    assert await col.find_one({"_id": "d"}) is not None


async def test_a_batch_of_projections_is_one_read_and_one_bulk_write_deciding_as_one_by_one(
    db_env,
) -> None:
    db, commands = db_env["db"], db_env["commands"]
    store = MongoNotificationStore(db, signal=WriteSignal())
    participants = db["participants"]
    await participants.insert_many(
        [
            {"_id": "old", "status": "pending", "last_event_time": "2026-03-01T00:00:00Z"},
            {"_id": "erased", "erased": True},
            {"_id": "newer", "status": "confirmed", "last_event_time": "2026-03-09T00:00:00Z"},
        ]
    )
    updates = [(f"new-{i}", {"status": "confirmed"}, "2026-03-02T00:00:00Z") for i in range(40)] + [
        ("old", {"status": "confirmed"}, "2026-03-02T00:00:00Z"),
        ("erased", {"status": "confirmed"}, "2026-03-02T00:00:00Z"),
        ("newer", {"status": "cancelled"}, "2026-03-02T00:00:00Z"),
    ]
    commands.names.clear()
    answers = await store.upsert_participants(updates)
    assert answers == [True] * 41 + [False, False]
    # One read; one bulk_write, which the driver sends as one insert and one update.
    assert commands.names == ["find", "insert", "update"]
    assert (await participants.find_one({"_id": "old"}))["status"] == "confirmed"
    assert (await participants.find_one({"_id": "newer"}))["status"] == "confirmed"
    assert await participants.count_documents({"_id": {"$regex": "^new-"}}) == 40

    # One registration twice in a batch (confirmed, then cancelled): in that order.
    answers = await store.upsert_participants(
        [
            ("twice", {"status": "confirmed"}, "2026-03-03T00:00:00Z"),
            ("twice", {"status": "cancelled"}, "2026-03-04T00:00:00Z"),
            ("new-0", {"status": "cancelled"}, "2026-03-01T00:00:00Z"),  # older: not applied
        ]
    )
    assert answers == [True, True, False]
    doc = await participants.find_one({"_id": "twice"})
    assert (doc["status"], doc["last_event_time"]) == ("cancelled", "2026-03-04T00:00:00Z")


async def test_a_projection_inserted_meanwhile_is_decided_again_alone(db_env) -> None:
    db = db_env["db"]
    store = MongoNotificationStore(db, signal=WriteSignal())
    participants = db["participants"]
    real_find = participants.find

    class RacedCollection:
        """Reads before another instance inserted the document."""

        def __getattr__(self, name: str) -> Any:
            return getattr(participants, name)

        def find(self, *args: Any, **kwargs: Any) -> Any:
            cursor = real_find({"_id": "none"})
            return cursor

    await participants.insert_one(
        {"_id": "raced", "status": "pending", "last_event_time": "2026-03-01T00:00:00Z"}
    )
    store.participants = RacedCollection()  # type: ignore[assignment]
    answers = await store.upsert_participants(
        [
            ("raced", {"status": "confirmed"}, "2026-03-02T00:00:00Z"),
            ("fresh", {"status": "confirmed"}, "2026-03-02T00:00:00Z"),
        ]
    )
    assert answers == [True, True]
    assert (await participants.find_one({"_id": "raced"}))["status"] == "confirmed"
    assert (await participants.find_one({"_id": "fresh"}))["status"] == "confirmed"


def event(ce_id: str) -> ReceivedEvent:
    return ReceivedEvent(
        id=ce_id, source="/t", type="t.v1", time=None, key=None, event=None, headers={}
    )


async def test_the_idempotency_record_of_a_batch_is_one_read_and_one_write(db_env) -> None:
    processed = ProcessedEvents(db_env["db"])
    await processed.record(event("ce-1"))
    assert await processed.seen_many(["ce-1", "ce-2", "ce-3"]) == {"ce-1"}
    await processed.record_many([event("ce-1"), event("ce-2"), event("ce-3")])  # ce-1 again
    assert await processed.seen_many(["ce-1", "ce-2", "ce-3", "ce-4"]) == {"ce-1", "ce-2", "ce-3"}
    assert await processed.seen_many([]) == set()
