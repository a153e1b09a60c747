"""A registration in fewer round trips (issue 19), against the session's real MongoDB.

The event is not read before its seat: the seat's one conditional write checks that the
event is still the one read (its revision and state). New registrations go in by group
commit (one ``insert_many(ordered=False)`` for those arriving together), and the outbox
relay claims and removes in batches. These tests check what each relies on in the real
server (nx-27017 here): ``BulkWriteError``'s details, the claim and removal in bulk, and
that a registration never takes a seat of an event changed by another process since.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import DuplicateKeyError

from services.registration import handlers
from services.registration.domain import (
    DomainError,
    EventChange,
    EventSpec,
    RegistrationRequest,
    TicketSigner,
)
from services.registration.store import GroupInsert, MongoRegistrationStore
from shared.outbox import OutboxRelay, WriteSignal, new_document
from tests.helpers import event_spec, participant
from tests.integration.test_outbox_relay import event_message
from tests.stack import MongoServer, unique_suffix, wait_until


class Commands(monitoring.CommandListener):
    """The commands sent on one collection, by name."""

    def __init__(self, collection: str) -> None:
        self.collection, self.names = collection, Counter[str]()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command.get(event.command_name) == self.collection:
            self.names[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture(scope="module")
async def two(mongo: MongoServer) -> AsyncIterator[tuple[handlers.Context, handlers.Context]]:
    """Two registration processes on one database (each with its own store)."""
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True)
    name = f"mkutano_registration{unique_suffix()}"
    contexts = []
    for _ in range(2):
        store = MongoRegistrationStore(client[name])
        await store.ensure_indexes()
        contexts.append(
            handlers.Context(store=store, signer=TicketSigner(b"k" * 32), notice_version="2025-01")
        )
    yield contexts[0], contexts[1]
    await client.drop_database(name)
    await client.close()


async def new_event(ctx: handlers.Context, **overrides: Any) -> str:
    spec = EventSpec.model_validate(event_spec(**overrides))
    await handlers.create_event(ctx, spec)
    return spec.id


def applicant(email: str) -> RegistrationRequest:
    return RegistrationRequest.model_validate(participant(email=email))


async def outcome(ctx: handlers.Context, event_id: str, email: str) -> str:
    try:
        return (await handlers.register_participant(ctx, event_id, applicant(email))).status
    except DomainError as exc:
        return exc.code


async def test_a_taken_email_in_a_group_commit_fails_only_its_request_and_gives_back_its_seat(
    two,
) -> None:
    ctx, _ = two
    event_id = await new_event(ctx, capacity=50)
    assert await outcome(ctx, event_id, "first@example.go.tz") == "confirmed"
    batches = ctx.store.new_registrations.batches
    emails = [f"p{i}@example.go.tz" for i in range(30)]
    emails += ["first@example.go.tz", "p3@example.go.tz", "p7@example.go.tz"]
    results = await asyncio.gather(*(outcome(ctx, event_id, e) for e in emails))
    assert Counter(results) == {"confirmed": 30, "already_registered": 3}
    # They went in together: fewer writes than registrations.
    assert ctx.store.new_registrations.batches - batches < len(emails)
    event = await ctx.store.get_event(event_id)
    assert event.seats_taken == 31 == await ctx.store.count_confirmed(event_id)


async def test_insert_many_reports_each_duplicate_by_its_index_on_the_real_server(
    mongo: MongoServer,
) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo.url)
    db = client[f"mkutano_group{unique_suffix()}"]
    try:
        col = db["registrations"]
        await col.create_index([("event_id", 1), ("email", 1)], unique=True)
        await col.create_index([("reference", 1)], unique=True)
        await col.insert_one({"_id": "a", "event_id": "e", "email": "x", "reference": "R1"})
        signal, heard = WriteSignal(), []
        signal.listen(lambda _col, doc_id: heard.append(doc_id))
        group = GroupInsert(col, signal, window_s=0.05)  # a window: one batch for sure
        docs = [
            new_document({"_id": "b", "event_id": "e", "email": "y", "reference": "R2"}, []),
            new_document({"_id": "c", "event_id": "e", "email": "x", "reference": "R3"}, []),
            new_document({"_id": "d", "event_id": "e", "email": "z", "reference": "R1"}, []),
            new_document({"_id": "f", "event_id": "e", "email": "w", "reference": "R4"}, []),
            new_document({"_id": "g", "event_id": "e", "email": "w", "reference": "R5"}, []),
        ]
        docs[0]["outbox"] = [event_message().to_document()]
        results = await asyncio.gather(*(group.insert(d) for d in docs), return_exceptions=True)
        assert group.batches == 1
        assert [type(r).__name__ for r in results] == [
            "NoneType",
            "DuplicateKeyError",
            "DuplicateKeyError",
            "NoneType",
            "DuplicateKeyError",
        ]
        assert all(isinstance(r, DuplicateKeyError) for r in (results[1], results[2], results[4]))
        # The store tells a taken reference from a taken email by the message.
        assert "email" in str(results[1]) and "reference" not in str(results[1])
        assert "reference" in str(results[2])
        assert "email" in str(results[4])
        assert sorted(d["_id"] for d in await col.find({}).to_list()) == ["a", "b", "f"]
        assert heard == ["b"]  # only a stored document with events wakes the relay
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_a_registration_takes_no_seat_of_an_event_another_process_cancelled(two) -> None:
    here, there = two
    event_id = await new_event(here, capacity=10)
    assert await outcome(here, event_id, "early@example.go.tz") == "confirmed"  # read here
    await handlers.update_event(
        there, event_id, EventChange(state="cancelled", cancellation_reason="Imeahirishwa")
    )
    cancelled = await there.store.get_event(event_id)  # not here: its copy stays old
    assert await outcome(here, event_id, "late@example.go.tz") == "event_cancelled"
    event = await here.store.get_event(event_id)
    assert event.seats_taken == cancelled.seats_taken
    assert await here.store.find_by_email(event_id, "late@example.go.tz") is None


async def test_a_registration_decides_on_an_event_another_process_changed(two) -> None:
    here, there = two
    event_id = await new_event(here, capacity=1)
    assert await outcome(here, event_id, "one@example.go.tz") == "confirmed"
    # Raised elsewhere: this process's copy says full, the stored event has room.
    await handlers.update_event(there, event_id, EventChange(capacity=2))
    assert await outcome(here, event_id, "two@example.go.tz") == "confirmed"
    assert await outcome(here, event_id, "three@example.go.tz") == "waitlisted"
    # Closed elsewhere: refused, nothing taken.
    await handlers.update_event(there, event_id, EventChange(state="closed"))
    assert await outcome(here, event_id, "four@example.go.tz") == "registration_closed"
    event = await here.store.get_event(event_id)
    assert event.seats_taken == 2 == await here.store.count_confirmed(event_id)
    # Reopened elsewhere with more room: this process's copy (closed) does not refuse.
    await handlers.update_event(there, event_id, EventChange(state="published", capacity=5))
    assert await outcome(here, event_id, "five@example.go.tz") == "confirmed"


async def test_the_relay_claims_and_removes_a_batch_in_a_few_round_trips(
    mongo: MongoServer,
) -> None:
    commands = Commands("events")
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, event_listeners=[commands])
    db = client[f"mkutano_relay{unique_suffix()}"]
    published: list[str] = []

    async def publish(message) -> None:
        published.append(message.id)

    relay = OutboxRelay(db, ["events"], publish, scan_interval_s=60, max_scan_interval_s=60)
    try:
        messages = [[event_message(), event_message()] for _ in range(100)]
        await db.events.insert_many(
            [new_document({"_id": f"d{i}"}, pair) for i, pair in enumerate(messages)]
        )
        # A document already leased by another relay is left alone.
        await db.events.update_one({"_id": "d0"}, {"$set": {"outbox_lease_until": 4e9}})
        for i in range(100):
            relay.hint("events", f"d{i}")
        before = commands.names.copy()
        assert await relay.drain_hinted() == 198
        sent = commands.names - before
        # One claim, one read, one bulk removal: not three per document.
        assert sent == {"update": 2, "find": 1}, sent
        expected = [m.id for pair in messages[1:] for m in pair]
        assert sorted(published) == sorted(expected)
        # Each document's events in their order.
        for pair in messages[1:]:
            assert published.index(pair[0].id) < published.index(pair[1].id)
        left = await db.events.find({"outbox_pending": True}, {"_id": 1}).to_list()
        assert [d["_id"] for d in left] == ["d0"]
        leases = await db.events.find({"_id": {"$ne": "d0"}}, {"outbox_lease_until": 1}).to_list()
        assert {d["outbox_lease_until"] for d in leases} == {0.0}

        # A document written between claim and removal keeps its new event.
        late = event_message()

        async def publish_and_append(message) -> None:
            published.append(message.id)
            if message.id == extra.id:
                await db.events.update_one(  # as a store saves: the whole outbox
                    {"_id": "e1"},
                    {
                        "$set": {"outbox": [extra.to_document(), late.to_document()]},
                        "$inc": {"rev": 1},
                    },
                )

        extra = event_message()
        await db.events.insert_one(new_document({"_id": "e1"}, [extra]))
        relay._publish = publish_and_append
        relay.hint("events", "e1")
        assert await relay.drain_hinted() == 1
        doc = await db.events.find_one({"_id": "e1"})
        assert [m["id"] for m in doc["outbox"]] == [late.id] and doc["outbox_pending"]
        relay._publish = publish
        relay.hint("events", "e1")
        assert await relay.drain_hinted() == 1
        assert late.id in published
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_a_registration_is_one_write_on_the_event_and_shares_the_rest(
    mongo: MongoServer,
) -> None:
    """Round trips per registration, counted on the wire: the event is not read before
    its seat, and inserts and the relay's claims and removals are shared under load."""
    commands: dict[str, Commands] = {"events": Commands("events")}
    commands["registrations"] = Commands("registrations")
    client: AsyncMongoClient = AsyncMongoClient(
        mongo.url, tz_aware=True, event_listeners=list(commands.values())
    )
    db = client[f"mkutano_registration{unique_suffix()}"]
    store = MongoRegistrationStore(db)
    await store.ensure_indexes()
    published: list[str] = []

    async def publish(message) -> None:
        published.append(message.id)

    relay = OutboxRelay(
        db, ["events", "registrations"], publish, scan_interval_s=600, max_scan_interval_s=600
    )
    store.signal.listen(relay.hint)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    ctx = handlers.Context(store=store, signer=TicketSigner(b"k" * 32), notice_version="2025-01")
    try:
        event_id = await new_event(ctx, capacity=500)

        async def relayed() -> bool:  # the relay's removal moves the event's revision
            return not (await db.events.find_one({"_id": event_id}))["outbox_pending"]

        await wait_until(relayed, timeout=30)
        assert await outcome(ctx, event_id, "warm@example.go.tz") == "confirmed"
        sent = len(published)
        before = {name: c.names.copy() for name, c in commands.items()}
        n, gate = 200, asyncio.Semaphore(20)

        async def one(i: int) -> str:
            async with gate:
                return await outcome(ctx, event_id, f"p{i}@example.go.tz")

        assert set(await asyncio.gather(*(one(i) for i in range(n)))) == {"confirmed"}
        await wait_until(lambda: len(published) >= sent + 2 * n, timeout=60)
        events = commands["events"].names - before["events"]
        registrations = commands["registrations"].names - before["registrations"]
        # One conditional write on the event per registration, no read of it.
        assert events == {"findAndModify": n}, events
        # Group commit and the relay's batches: far fewer than the 4 per registration
        # (insert, claim, remove, and before, the event read) they would be one by one.
        assert sum(registrations.values()) < 2 * n, registrations
        assert registrations["insert"] < n
    finally:
        stop.set()
        await task
        await client.drop_database(db.name)
        await client.close()
