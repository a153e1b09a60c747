"""The organisers' list sorted by MongoDB (nx-27017 by default, or a real server): 60
registrations with names in mixed order and case, paged by 25 in each sort, are the
whole list in that order, with no gap and no repeat; the derived name key follows the
name through erasure and is backfilled for documents written before it existed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.registration import handlers
from services.registration.api import decode_cursor, encode_cursor
from services.registration.domain import (
    REGISTRATION_SORTS,
    EventSpec,
    RegistrationRequest,
    RegistrationSort,
    TicketSigner,
    name_sort_key,
    sort_key,
)
from services.registration.store import MongoRegistrationStore
from tests.helpers import event_spec, participant
from tests.stack import MongoServer, unique_suffix

GIVEN = ["Zuhura", "amina", "Baraka", "Émile", "neema", "Juma", "asha", "Elia", "ÁNGEL", "Baraka"]
FAMILY = ["Mollel", "said", "Kimaro", "Mushi", "MREMA", "Ndege"]
CATEGORIES = [
    {"code": "delegate", "name_sw": "Mjumbe", "name_en": "Delegate"},
    {"code": "speaker", "name_sw": "Mzungumzaji", "name_en": "Speaker"},
]


@pytest.fixture(scope="module")
async def ctx(mongo: MongoServer) -> AsyncIterator[handlers.Context]:
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True)
    store = MongoRegistrationStore(client[f"mkutano_registration{unique_suffix()}"])
    await store.ensure_indexes()
    yield handlers.Context(store=store, signer=TicketSigner(b"k" * 32), notice_version="2025-01")
    await client.drop_database(store.db.name)
    await client.close()


@pytest.fixture(scope="module")
async def event_id(ctx: handlers.Context) -> str:
    """60 people, names not in creation order (duplicates, mixed case, accents); the
    first 40 take the seats, the rest wait; every third is a speaker."""
    spec = EventSpec.model_validate(event_spec(capacity=40, categories=CATEGORIES))
    await handlers.create_event(ctx, spec)
    for i in range(60):
        name = f"{GIVEN[(i * 7) % len(GIVEN)]} {FAMILY[(i * 5) % len(FAMILY)]}"
        body = participant(full_name=name, category="speaker" if i % 3 == 0 else "delegate")
        await handlers.register_participant(ctx, spec.id, RegistrationRequest.model_validate(body))
    return spec.id


async def pages_of(
    ctx: handlers.Context, event_id: str, sort: RegistrationSort, filters: dict[str, Any]
) -> list[list[Any]]:
    """Every page of 25 as the API walks them: through the cursors it hands out."""
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        after = decode_cursor(cursor, sort) if cursor else None
        page = await handlers.registrations_page(ctx, event_id, filters, after, 26, sort)
        pages.append(page[:25])
        if len(page) <= 25:
            return pages
        cursor = encode_cursor(page[24], sort)


async def everyone(ctx: handlers.Context, event_id: str, filters: dict[str, Any]) -> list[Any]:
    return [r async for r in await handlers.export_registrations(ctx, event_id, filters)]


@pytest.mark.parametrize("sort", REGISTRATION_SORTS)
async def test_pages_of_25_are_the_whole_list_in_each_sort(
    ctx: handlers.Context, event_id: str, sort: RegistrationSort
) -> None:
    pages = await pages_of(ctx, event_id, sort, {})
    assert [len(p) for p in pages] == [25, 25, 10]
    listed = [r for p in pages for r in p]
    assert len({r.id for r in listed}) == 60  # no repeat, and with 60 in all no gap
    all_60 = await everyone(ctx, event_id, {})
    expected = sorted(all_60, key=lambda r: sort_key(r, sort), reverse=sort == "-created")
    assert [r.id for r in listed] == [r.id for r in expected]
    if sort == "name":
        keys = [name_sort_key(r.full_name) for r in listed]
        assert keys == sorted(keys)
        assert keys[0].startswith("amina") and keys[-1].startswith("zuhura")
        # case and accents ignored: "ÁNGEL …" among the a's, "Émile …" among the e's
        firsts = [r.full_name.split()[0] for r in listed]
        assert firsts.index("ÁNGEL") < firsts.index("asha") < firsts.index("Baraka")
        assert firsts.index("Elia") < firsts.index("Émile") < firsts.index("Juma")
        assert name_sort_key(pages[1][0].full_name) >= name_sort_key(pages[0][-1].full_name)
    if sort == "status":
        assert [r.status for r in listed] == ["confirmed"] * 40 + ["waitlisted"] * 20
    if sort == "created":
        assert [r.id for r in listed] == [r.id for r in all_60]  # the CSV export's order


async def test_a_sort_pages_within_a_category_filter(ctx: handlers.Context, event_id: str) -> None:
    pages = await pages_of(ctx, event_id, "name", {"category": "speaker"})
    listed = [r for p in pages for r in p]
    assert len(listed) == 20 and {r.category for r in listed} == {"speaker"}
    keys = [name_sort_key(r.full_name) for r in listed]
    assert keys == sorted(keys)


async def test_erasure_blanks_the_name_key_and_a_backfill_fills_old_documents(
    ctx: handlers.Context,
) -> None:
    spec = EventSpec.model_validate(event_spec(capacity=10))
    await handlers.create_event(ctx, spec)
    made = [
        await handlers.register_participant(
            ctx, spec.id, RegistrationRequest.model_validate(participant(full_name=name))
        )
        for name in ("Zainabu Omari", "Bakari Ali", "Mwanaisha Haji")
    ]
    ids = [m.id for m in made]
    store = ctx.store
    stored = await store.registrations.find_one({"_id": ids[0]})
    assert stored["name_key"] == "zainabu omari"
    await handlers.erase_registration(ctx, ids[0], reason="participant_request")
    stored = await store.registrations.find_one({"_id": ids[0]})
    assert stored["full_name"] == "[erased]" and stored["name_key"] == "[erased]"
    assert "name_key" not in (await store.personal_data(ids[1]) or {})

    # Documents written before the name sort have no key: the start-up backfill gives it.
    await store.registrations.update_many({"_id": {"$in": ids[1:]}}, {"$unset": {"name_key": ""}})
    assert await store.backfill_name_keys(batch_size=1) == 2
    for registration_id, key in zip(ids[1:], ("bakari ali", "mwanaisha haji"), strict=True):
        stored = await store.registrations.find_one({"_id": registration_id})
        assert stored["name_key"] == key
    assert await store.backfill_name_keys() == 0
    listed = await store.page_registrations(spec.id, {}, None, 10, "name")
    assert [r.full_name for r in listed] == ["[erased]", "Bakari Ali", "Mwanaisha Haji"]
