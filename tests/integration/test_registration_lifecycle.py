"""Registration use cases against the session's real MongoDB (nx-27017 or MongoDB).

Each rule of the lifecycle is checked on the documents and on the outbox events the
write carries (the relay that publishes them is covered by the e2e tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.registration import handlers, workers
from services.registration.domain import (
    DomainError,
    EventChange,
    EventSpec,
    RegistrationChange,
    RegistrationRequest,
    TicketSigner,
)
from services.registration.store import MongoRegistrationStore
from tests.helpers import event_spec, participant
from tests.stack import MongoServer, unique_suffix, wait_until

T = "tz.go.ega.registration."


@pytest.fixture(scope="module")
async def ctx(mongo: MongoServer) -> AsyncIterator[handlers.Context]:
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True)
    store = MongoRegistrationStore(client[f"mkutano_registration{unique_suffix()}"])
    await store.ensure_indexes()
    yield handlers.Context(store=store, signer=TicketSigner(b"k" * 32), notice_version="2025-01")
    await client.drop_database(store.db.name)
    await client.close()


async def new_event(ctx: handlers.Context, **overrides: Any) -> str:
    spec = EventSpec.model_validate(event_spec(**overrides))
    await handlers.create_event(ctx, spec)
    return spec.id


async def register(ctx: handlers.Context, event_id: str, **overrides: Any) -> handlers.Registered:
    return await handlers.register_participant(
        ctx, event_id, RegistrationRequest.model_validate(participant(**overrides))
    )


async def doc(ctx: handlers.Context, registration_id: str) -> dict[str, Any]:
    """The registration's document as stored, with its outbox."""
    found = await ctx.store.registrations.find_one({"_id": registration_id})
    assert found is not None
    return found


async def event_doc(ctx: handlers.Context, event_id: str) -> dict[str, Any]:
    found = await ctx.store.events.find_one({"_id": event_id})
    assert found is not None
    return found


def outbox_types(document: dict[str, Any], topic: str = "registration.v1") -> list[str]:
    """The short types (no version) of the document's outbox events on one stream."""
    return [
        m["type"].removeprefix(T).rsplit(".v", 1)[0]
        for m in document["outbox"]
        if m["topic"] == topic
    ]


def last(document: dict[str, Any], topic: str = "registration.v1") -> dict[str, Any]:
    """The last outbox event of the document on one stream (the public one unless told)."""
    return [m for m in document["outbox"] if m["topic"] == topic][-1]


NOTICES = "registration.notices.v1"


async def seats(ctx: handlers.Context, event_id: str) -> int:
    return (await event_doc(ctx, event_id))["seats_taken"]


async def test_cancellation_promotes_exactly_the_first_waitlisted(ctx) -> None:
    event_id = await new_event(ctx, capacity=2)
    people = [await register(ctx, event_id) for _ in range(5)]
    assert [p.status for p in people] == ["confirmed"] * 2 + ["waitlisted"] * 3
    assert [p.waitlist_position for p in people[2:]] == [1, 2, 3]

    await handlers.cancel_registration(ctx, people[0].id, by="participant")

    cancelled, first, second = [await doc(ctx, p.id) for p in (people[0], people[2], people[3])]
    assert cancelled["status"] == "cancelled"
    assert outbox_types(cancelled)[-1] == "RegistrationCancelled"
    assert first["status"] == "confirmed" and first["waitlist_position"] is None
    promoted, notice = last(first), last(first, NOTICES)
    assert promoted["type"] == T + "WaitlistPromoted.v2" and "ticket" not in promoted["data"]
    assert "email" not in promoted["data"]["participant"]
    assert notice["type"] == T + "WaitlistPromotedNotice.v1"
    assert notice["data"]["ticket"] and notice["data"]["participant"]["email"]
    assert second["status"] == "waitlisted"
    assert await seats(ctx, event_id) == 2
    with pytest.raises(DomainError) as err:
        await handlers.cancel_registration(ctx, people[0].id, by="participant")
    assert err.value.code == "registration_cancelled"


async def test_concurrent_cancellations_promote_exactly_as_many(ctx) -> None:
    event_id = await new_event(ctx, capacity=4)
    people = [await register(ctx, event_id) for _ in range(10)]
    confirmed = [p for p in people if p.status == "confirmed"]
    await asyncio.gather(
        *(handlers.cancel_registration(ctx, p.id, by="participant") for p in confirmed[:3])
    )
    statuses = [(await doc(ctx, p.id))["status"] for p in people]
    assert statuses[:3] == ["cancelled"] * 3
    assert statuses[3:7] == ["confirmed"] * 4  # #4 kept its seat; waitlist 1..3 promoted
    assert statuses[7:] == ["waitlisted"] * 3
    assert await seats(ctx, event_id) == 4


async def test_raised_capacity_promotes_into_the_new_seats(ctx) -> None:
    event_id = await new_event(ctx, capacity=1)
    people = [await register(ctx, event_id) for _ in range(4)]
    updated = await handlers.update_event(ctx, event_id, EventChange(capacity=3))
    assert updated.capacity == 3 and updated.seats_taken == 3
    event = await event_doc(ctx, event_id)
    assert event["capacity"] == 3 and event["seats_taken"] == 3
    assert [(await doc(ctx, p.id))["status"] for p in people] == [
        "confirmed",
        "confirmed",
        "confirmed",
        "waitlisted",
    ]
    assert outbox_types(event)[-1] == "EventUpdated"
    assert event["outbox"][-1]["data"]["changed_fields"] == ["capacity"]
    with pytest.raises(DomainError) as err:
        await handlers.update_event(ctx, event_id, EventChange(capacity=2))
    assert err.value.code == "capacity_below_confirmed"


async def test_reconcile_repairs_a_leaked_seat_and_fills_it(ctx) -> None:
    event_id = await new_event(ctx, capacity=3)
    people = [await register(ctx, event_id) for _ in range(4)]
    # A crash between taking a seat and writing the registration: the seat leaked (the
    # counters a seat of a category without a quota moves).
    await ctx.store.events.update_one(
        {"_id": event_id},
        {"$inc": {"seats_taken": 1, "committed": 1, "category_taken.ict_officer": 1}},
    )
    await handlers.cancel_registration(ctx, people[0].id, by="participant")
    # The counter was 4/3: the cancellation's freed seat could not be given away.
    assert (await doc(ctx, people[3].id))["status"] == "waitlisted"
    assert await seats(ctx, event_id) == 3

    result = await handlers.reconcile_seats(ctx, event_id, settle_s=0)

    assert result == {"seats_taken_before": 3, "recounted": 2, "seats_taken": 3, "promoted": 1}
    assert (await doc(ctx, people[3].id))["status"] == "confirmed"
    assert await ctx.store.count_confirmed(event_id) == await seats(ctx, event_id) == 3


async def test_reconcile_gives_back_a_seat_lost_between_cancel_and_release(ctx) -> None:
    event_id = await new_event(ctx, capacity=2)
    people = [await register(ctx, event_id) for _ in range(2)]
    # Crash simulation: the registration was cancelled but the seat never released.
    await ctx.store.registrations.update_one(
        {"_id": people[0].id}, {"$set": {"status": "cancelled"}}
    )
    assert (await register(ctx, event_id)).status == "waitlisted"
    result = await handlers.reconcile_all(ctx)
    assert result >= 1
    assert await seats(ctx, event_id) == 2 == await ctx.store.count_confirmed(event_id)
    # The freed seat went to the one who waited.
    assert (await ctx.store.first_waitlisted(event_id)) is None


async def test_approval_confirms_or_waitlists_by_capacity_and_rejection_needs_pending(
    ctx,
) -> None:
    event_id = await new_event(ctx, capacity=1, requires_approval=True)
    a, b, c = [await register(ctx, event_id) for _ in range(3)]
    assert a.status == b.status == c.status == "pending_approval"
    assert await seats(ctx, event_id) == 0

    await handlers.approve_registration(ctx, a.id, by="organiser-1")
    await handlers.approve_registration(ctx, b.id, by="organiser-1")
    await handlers.reject_registration(ctx, c.id, "organiser-1", "Not nominated")
    first, second, third = [await doc(ctx, p.id) for p in (a, b, c)]

    assert first["status"] == "confirmed" and last(first, NOTICES)["data"]["ticket"]
    assert second["status"] == "waitlisted" and second["waitlist_position"] == 1
    assert outbox_types(second)[-2:] == ["RegistrationApproved", "ParticipantWaitlisted"]
    assert third["status"] == "rejected"
    assert last(third, NOTICES)["data"]["reason"] == "Not nominated"
    with pytest.raises(DomainError) as err:
        await handlers.approve_registration(ctx, c.id, by="organiser-1")
    assert err.value.code == "not_pending_approval"
    assert await seats(ctx, event_id) == 1


async def test_concurrent_approvals_of_one_nomination_take_one_seat(ctx) -> None:
    event_id = await new_event(ctx, capacity=5, requires_approval=True)
    a = await register(ctx, event_id)
    outcomes = await asyncio.gather(
        *(handlers.approve_registration(ctx, a.id, by="o") for _ in range(4)),
        return_exceptions=True,
    )
    assert sum(1 for o in outcomes if not isinstance(o, Exception)) == 1
    assert all(not isinstance(o, Exception) or o.code == "not_pending_approval" for o in outcomes)
    assert await seats(ctx, event_id) == 1


async def test_self_service_finds_changes_and_refuses_wrong_tokens(ctx) -> None:
    event_id = await new_event(ctx)
    created = await register(ctx, event_id, phone="0712 345 678")
    found = await handlers.find_own_registration(ctx, created.reference, created.manage_token)
    assert found.id == created.id
    for reference, token in (
        (created.reference, "wrong-token"),
        ("MK-22222-22222", created.manage_token),
        (created.reference, ""),
    ):
        with pytest.raises(DomainError) as err:
            await handlers.find_own_registration(ctx, reference, token)
        assert err.value.code == "registration_not_found"

    change = RegistrationChange(phone="+255 754 000 111", language="en")
    await handlers.update_own_registration(ctx, created.id, change)
    updated = await doc(ctx, created.id)
    assert updated["phone"] == "+255754000111" and updated["language"] == "en"
    event = last(updated)
    assert event["type"] == T + "RegistrationUpdated.v2"
    assert event["data"]["changed_fields"] == ["language", "phone"]
    assert event["data"]["participant"]["language"] == "en"
    # The same change again changes nothing and publishes nothing.
    await handlers.update_own_registration(ctx, created.id, change)
    again = await doc(ctx, created.id)
    assert len(again["outbox"]) == len(updated["outbox"])


async def test_check_in_once_per_day_only_when_confirmed(ctx) -> None:
    now = datetime.now(UTC)
    event_id = await new_event(
        ctx,
        capacity=1,
        starts_at=(now - timedelta(hours=30)).isoformat(),
        ends_at=(now + timedelta(days=2)).isoformat(),
        registration_opens_at=(now - timedelta(days=3)).isoformat(),
    )
    confirmed = await register(ctx, event_id)
    waitlisted = await register(ctx, event_id)
    ticket = ctx.signer.sign(confirmed.id)

    result = await handlers.check_in(ctx, ticket)
    stored = await doc(ctx, confirmed.id)
    assert stored["checkins"] == {result.day: result.checked_in_at}
    assert last(stored)["type"] == T + "ParticipantCheckedIn.v2"
    assert last(stored)["data"]["day"] == result.day

    with pytest.raises(DomainError) as err:
        await handlers.check_in(ctx, ticket)
    assert err.value.code == "already_checked_in"
    assert err.value.details == {"day": result.day, "checked_in_at": result.checked_in_at}

    with pytest.raises(DomainError) as err:
        await handlers.check_in(ctx, ctx.signer.sign(waitlisted.id))
    assert err.value.code == "registration_waitlisted"
    with pytest.raises(DomainError) as err:
        tampered = ticket[:30] + ("A" if ticket[30] != "A" else "B") + ticket[31:]  # in the tag
        await handlers.check_in(ctx, tampered)
    assert err.value.code == "invalid_ticket"
    await handlers.cancel_registration(ctx, confirmed.id, by="participant")
    with pytest.raises(DomainError) as err:
        await handlers.check_in(ctx, ticket)
    assert err.value.code == "registration_cancelled"


async def test_check_in_is_refused_outside_the_event_days(ctx) -> None:
    event_id = await new_event(ctx)  # starts in 30 days
    created = await register(ctx, event_id)
    with pytest.raises(DomainError) as err:
        await handlers.check_in(ctx, ctx.signer.sign(created.id))
    assert err.value.code == "not_an_event_day"


async def test_event_lifecycle_publishes_and_cancelling_cancels_registrations(ctx) -> None:
    event_id = await new_event(ctx, state="draft", capacity=1)
    draft = await event_doc(ctx, event_id)
    assert draft["outbox"] == []
    await handlers.update_event(ctx, event_id, EventChange(state="published"))
    assert outbox_types(await event_doc(ctx, event_id)) == ["EventPublished"]
    people = [await register(ctx, event_id) for _ in range(2)]
    await handlers.update_event(
        ctx, event_id, EventChange(state="cancelled", cancellation_reason="Venue unavailable")
    )
    cancelled = await event_doc(ctx, event_id)
    assert outbox_types(cancelled)[-1] == "EventCancelled"
    assert cancelled["outbox"][-1]["data"]["reason"] == "Venue unavailable"
    for p in people:
        stored = await doc(ctx, p.id)
        assert stored["status"] == "cancelled"
        assert last(stored)["data"]["cancelled_by"] == "organiser"
    with pytest.raises(DomainError) as err:
        await handlers.update_event(ctx, event_id, EventChange(state="published"))
    assert err.value.code == "invalid_state_change"
    with pytest.raises(DomainError) as err:
        await register(ctx, event_id)
    assert err.value.code == "event_cancelled"


async def test_search_pages_and_statistics(ctx) -> None:
    event_id = await new_event(ctx, capacity=3)
    for i in range(5):
        await register(
            ctx,
            event_id,
            full_name=f"Mshiriki Namba {i}",
            institution="TRA" if i % 2 else "e-GA",
            region="Arusha" if i < 2 else None,
        )
    pages, cursor = [], None
    while True:
        docs = await ctx.store.page_registrations(event_id, {}, cursor, 2)
        if not docs:
            break
        pages.append([d.full_name for d in docs])
        cursor = (docs[-1].created_us, docs[-1].id)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [n for page in pages for n in page] == [f"Mshiriki Namba {i}" for i in range(5)]
    hits = await ctx.store.page_registrations(event_id, {"q": "namba 3"}, None, 10)
    assert [d.full_name for d in hits] == ["Mshiriki Namba 3"]
    tra = await ctx.store.page_registrations(event_id, {"institution": "TRA"}, None, 10)
    assert len(tra) == 2
    waiting = await ctx.store.page_registrations(event_id, {"status": "waitlisted"}, None, 10)
    assert len(waiting) == 2
    stats = await ctx.store.statistics(event_id)
    assert stats["status"] == {"confirmed": 3, "waitlisted": 2}
    assert stats["institution"] == {"e-GA": 3, "TRA": 2}
    assert stats["region"] == {"unspecified": 3, "Arusha": 2}
    assert stats["cadre"] == {"ict_officer": 5}


async def test_retention_worker_anonymises_on_its_own_and_stops_when_asked(ctx) -> None:
    """The hourly worker, run with a short interval: it erases what the rule says, keeps
    what it does not, and ends promptly when the service stops."""
    old_event = await new_event(ctx)
    current_event = await new_event(ctx)
    old = await register(ctx, old_event, full_name="Zawadi Retention Worker")
    kept = await register(ctx, current_event)
    ended = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    await ctx.store.events.update_one({"_id": old_event}, {"$set": {"ends_at": ended}})

    stop = asyncio.Event()
    worker = asyncio.create_task(
        workers.run_retention(ctx, stop, retention_days=365, interval_s=0.05)
    )
    try:
        erased = await wait_until(
            lambda: _erased(ctx, old.id), timeout=10, message="not erased by the worker"
        )
        assert erased["full_name"] != "Zawadi Retention Worker"
        assert erased["outbox"][-1]["type"] == T + "PersonalDataErased.v1"
        assert not (await doc(ctx, kept.id)).get("erased_at")
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=2)


async def _erased(ctx: handlers.Context, registration_id: str) -> dict[str, Any] | None:
    found = await doc(ctx, registration_id)
    return found if found.get("erased_at") else None


async def test_an_event_is_stored_as_sent_and_a_save_keeps_the_rest(ctx) -> None:
    """Times keep the offset they were sent with (the venue's), the seat counters are
    never written by a save, and the aggregate read back equals the one saved."""
    event_id = await new_event(
        ctx,
        capacity=5,
        starts_at="2031-02-11T08:00:00+03:00",
        ends_at="2031-02-13T17:00:00+03:00",
    )
    await register(ctx, event_id)
    stored = await event_doc(ctx, event_id)
    assert stored["starts_at"] == "2031-02-11T08:00:00+03:00" and stored["seats_taken"] == 1
    await handlers.update_event(ctx, event_id, EventChange(title_en="Renamed"))
    after = await event_doc(ctx, event_id)
    assert after["starts_at"] == stored["starts_at"] and after["ends_at"] == stored["ends_at"]
    assert after["seats_taken"] == 1 and after["rev"] == stored["rev"] + 1
    assert after["outbox"][-1]["data"]["changed_fields"] == ["title_en"]
    loaded = await ctx.store.get_event(event_id)
    assert loaded is not None and loaded.title_en == "Renamed" and loaded.seats_taken == 1


async def test_idempotent_registration_replays_on_the_real_store(ctx) -> None:
    event_id = await new_event(ctx)
    body = RegistrationRequest.model_validate(participant())
    first = await handlers.register_idempotently(ctx, event_id, body, "k-1")
    again = await handlers.register_idempotently(ctx, event_id, body, "k-1")
    assert first.registered and again.registered and again.replayed
    assert again.registered.id == first.registered.id
    stored = await doc(ctx, first.registered.id)
    assert stored["idempotency_key"] == f"{event_id}:k-1"
    found = await handlers.find_own_registration(
        ctx, first.registered.reference, again.registered.manage_token
    )
    assert found.id == first.registered.id
    with pytest.raises(DomainError) as err:
        await handlers.register_idempotently(
            ctx, event_id, RegistrationRequest.model_validate(participant()), "k-1"
        )
    assert err.value.code == "idempotency_key_reused"


async def test_erasure_on_the_real_store(ctx) -> None:
    event_id = await new_event(ctx, capacity=1)
    created = await register(ctx, event_id, full_name="Neema Erasure")
    waiting = await register(ctx, event_id)
    await handlers.erase_registration(ctx, created.id, reason="participant_request")
    erased = await doc(ctx, created.id)
    assert erased["full_name"] == "[erased]" and erased["manage_token_hash"] is None
    assert outbox_types(erased)[-2:] == ["RegistrationCancelled", "PersonalDataErased"]
    assert (await doc(ctx, waiting.id))["status"] == "confirmed"
    data = await handlers.export_own_data(ctx, created.id)
    assert data["full_name"] == "[erased]" and "outbox" not in data and "rev" not in data
