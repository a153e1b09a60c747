"""Categories, quotas and limited choices against the session's real MongoDB.

The counters are conditional atomic updates of the event document: these tests run
hundreds of concurrent registrations and cancellations and then compare what the
documents say with what a recount of the registrations gives.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.registration import handlers
from services.registration.domain import DomainError, EventSpec, RegistrationRequest, TicketSigner
from services.registration.store import MongoRegistrationStore
from tests.helpers import event_spec, participant
from tests.stack import MongoServer, unique_suffix


@pytest.fixture(scope="module")
async def ctx(mongo: MongoServer) -> AsyncIterator[handlers.Context]:
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True)
    store = MongoRegistrationStore(client[f"mkutano_registration{unique_suffix()}"])
    await store.ensure_indexes()
    yield handlers.Context(store=store, signer=TicketSigner(b"k" * 32), notice_version="2025-01")
    await client.drop_database(store.db.name)
    await client.close()


def category(code: str, **overrides: Any) -> dict[str, Any]:
    return {"code": code, "name_sw": code.title(), "name_en": code.title(), **overrides}


async def new_event(ctx: handlers.Context, **overrides: Any) -> str:
    spec = EventSpec.model_validate(event_spec(**overrides))
    await handlers.create_event(ctx, spec)
    return spec.id


def applicant(code: str, **overrides: Any) -> RegistrationRequest:
    return RegistrationRequest.model_validate(participant(cadre=None, category=code, **overrides))


async def confirmed_by_category(ctx: handlers.Context, event_id: str) -> dict[str, int]:
    return await ctx.store.count_by_category(event_id, ("confirmed",))


async def test_200_concurrent_registrations_hold_capacity_and_every_quota(ctx) -> None:
    event_id = await new_event(
        ctx,
        capacity=120,
        categories=[
            # Free categories: a fee would make them pending_payment (holding the same
            # seats; tests/e2e/test_payments_flows.py covers that path).
            category("student", quota=20),
            category("permanent_secretary", quota=30),
            category("ict_officer"),
            category("guest"),
        ],
    )
    codes = ["student", "permanent_secretary", "ict_officer", "guest"] * 50
    random.Random(13).shuffle(codes)
    results = await asyncio.gather(
        *(handlers.register_participant(ctx, event_id, applicant(c)) for c in codes)
    )
    assert Counter(r.status for r in results) == {"confirmed": 120, "waitlisted": 80}
    confirmed = await confirmed_by_category(ctx, event_id)
    assert confirmed["student"] == 20 and confirmed["permanent_secretary"] == 30
    # The other two share what the quotas leave: 70 seats.
    assert confirmed["ict_officer"] + confirmed["guest"] == 70
    event = await ctx.store.get_event(event_id)
    assert event.seats_taken == 120 == await ctx.store.count_confirmed(event_id)
    assert event.category_taken == confirmed
    assert event.committed == 120

    # 40 confirmed people cancel at once: each seat goes to someone of a category whose
    # quota allows it, and the counters still agree with the registrations.
    cancelled = [r for r in results if r.status == "confirmed"][:40]
    await asyncio.gather(
        *(handlers.cancel_registration(ctx, r.id, by="participant") for r in cancelled)
    )
    event = await ctx.store.get_event(event_id)
    after = await confirmed_by_category(ctx, event_id)
    assert event.seats_taken == await ctx.store.count_confirmed(event_id) == 120
    assert after["student"] <= 20 and after["permanent_secretary"] <= 30
    assert event.category_taken == after
    result = await handlers.reconcile_seats(ctx, event_id, settle_s=0)
    assert result["seats_taken_before"] == result["recounted"] == 120


async def test_a_limited_choice_holds_under_concurrency_and_answers_are_stored(ctx) -> None:
    question = {
        "id": "field_visit",
        "type": "single_choice",
        "label_sw": "Ziara ya mafunzo",
        "label_en": "Field visit",
        "choices": [
            {"code": "ngorongoro", "label_sw": "Ngorongoro", "label_en": "Ngorongoro", "limit": 60},
            {"code": "none", "label_sw": "Hapana", "label_en": "None"},
        ],
    }
    event_id = await new_event(ctx, capacity=500, questions=[question])
    attempts = await asyncio.gather(
        *(
            handlers.register_participant(
                ctx, event_id, applicant("ict_officer", answers={"field_visit": "ngorongoro"})
            )
            for _ in range(100)
        ),
        return_exceptions=True,
    )
    registered = [a for a in attempts if isinstance(a, handlers.Registered)]
    refused = [a for a in attempts if isinstance(a, DomainError)]
    assert len(registered) == 60 and len(refused) == 40
    assert {(e.code, e.field) for e in refused} == {("choice_full", "answers.field_visit")}
    event = await ctx.store.get_event(event_id)
    assert event.choice_taken == {"field_visit": {"ngorongoro": 60}}
    stored = await ctx.store.get_registration(registered[0].id)
    assert stored.answers == {"field_visit": "ngorongoro"}
    # A cancellation gives the place back.
    await handlers.cancel_registration(ctx, registered[0].id, by="participant")
    event = await ctx.store.get_event(event_id)
    assert event.choice_places_left("field_visit", "ngorongoro") == 1


async def test_an_event_stored_before_categories_counts_its_cadres_once(ctx) -> None:
    event_id = await new_event(ctx, capacity=3)
    people = [
        await handlers.register_participant(ctx, event_id, applicant("ict_officer"))
        for _ in range(2)
    ]
    # As the documents were before this release: no categories, no category counters.
    await ctx.store.events.update_one(
        {"_id": event_id},
        {"$unset": {"categories": "", "category_taken": "", "committed": "", "quotas": ""}},
    )
    await ctx.store.registrations.update_many(
        {"event_id": event_id}, {"$unset": {"category": "", "answers": "", "via": ""}}
    )
    event = await ctx.store.get_event(event_id)
    assert [c.code for c in event.categories][3] == "ict_officer"
    assert event.category_taken["ict_officer"] == 2 and event.committed == 2
    third = await handlers.register_participant(ctx, event_id, applicant("ict_officer"))
    fourth = await handlers.register_participant(ctx, event_id, applicant("other_officer"))
    assert (third.status, fourth.status) == ("confirmed", "waitlisted")
    old = await ctx.store.get_registration(people[0].id)
    assert (old.category, old.via) == ("ict_officer", "self")
