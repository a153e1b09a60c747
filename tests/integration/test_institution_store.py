"""Issue 13 B: the institutions' store on the session's real MongoDB (nx-27017 or
MongoDB): the registry's documents, the contact persons' lookup, and the sign-in link's
nonce consumed by one conditional write (of 20 concurrent uses, one wins)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient

from services.registration import handlers
from services.registration.domain import (
    DomainError,
    InstitutionChange,
    InstitutionSpec,
    TicketSigner,
)
from services.registration.store import MongoInstitutionStore, MongoRegistrationStore
from tests.stack import MongoServer, unique_suffix


@pytest.fixture(scope="module")
async def ctx(mongo: MongoServer) -> AsyncIterator[handlers.Context]:
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True)
    db = client[f"mkutano_registration{unique_suffix()}"]
    store = MongoRegistrationStore(db)
    institutions = MongoInstitutionStore(db)
    await store.ensure_indexes()
    await institutions.ensure_indexes()
    yield handlers.Context(
        store=store,
        signer=TicketSigner(b"k" * 32),
        notice_version="2025-01",
        institutions=institutions,
    )
    await client.drop_database(db.name)
    await client.close()


def spec(code: str, email: str) -> InstitutionSpec:
    return InstitutionSpec.model_validate(
        {
            "code": code,
            "name_sw": f"Taasisi {code}",
            "name_en": f"Institution {code}",
            "kind": "agency",
            "region": "Dodoma",
            "contacts": [{"full_name": "Neema Said", "email": email}],
        }
    )


async def test_the_registry_round_trips_and_finds_contact_persons(ctx: handlers.Context) -> None:
    await handlers.create_institution(ctx, spec("INT-A", "a.contact@example.go.tz"))
    await handlers.create_institution(ctx, spec("INT-B", "shared@example.go.tz"))
    await handlers.create_institution(ctx, spec("INT-C", "shared@example.go.tz"))
    with pytest.raises(DomainError) as taken:
        await handlers.create_institution(ctx, spec("INT-A", "x@example.go.tz"))
    assert taken.value.code == "institution_exists"
    found = await ctx.institutions.institutions_of_contact("shared@example.go.tz")
    assert sorted(i.code for i in found) == ["INT-B", "INT-C"]
    change = InstitutionChange.model_validate({"region": None, "kind": "ministry"})
    changed = await handlers.update_institution(ctx, "INT-A", change)
    again = await handlers.get_institution(ctx, "INT-A")
    assert (again.region, again.kind, again.rev) == (None, "ministry", changed.rev)
    assert again.contacts == changed.contacts
    assert await handlers.request_institution_sign_in(ctx, "shared@example.go.tz") == 2
    docs = await ctx.institutions.sign_ins.find({}).to_list()
    assert len(docs) == 2 and all(d["outbox"] for d in docs)  # each with its email
    assert {d["state"] for d in docs} == {"issued"}


async def test_a_link_opens_one_session_under_concurrent_use(ctx: handlers.Context) -> None:
    await handlers.create_institution(ctx, spec("INT-RACE", "race@example.go.tz"))
    await handlers.request_institution_sign_in(ctx, "race@example.go.tz")
    docs = await ctx.institutions.sign_ins.find({"institution_code": "INT-RACE"}).to_list()
    (doc,) = docs
    url = doc["outbox"][0]["data"]["sign_in_url"]
    link = url.split("/institution/sign-in/")[1].split("?")[0]
    results = await asyncio.gather(
        *(handlers.sign_in_with_link(ctx, link) for _ in range(20)), return_exceptions=True
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1, results
    assert all(
        isinstance(r, DomainError) and r.code == "sign_in_link_invalid"
        for r in results
        if isinstance(r, BaseException)
    )
    stored = await ctx.institutions.sign_ins.find_one({"_id": doc["_id"]})
    assert stored["state"] == "used"
