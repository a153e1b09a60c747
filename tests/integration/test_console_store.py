"""The console's MongoDB store on the real server: accounts (unique, revision-checked),
sessions kept by the hash of their id, OIDC states taken once."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from services.console.domain import PendingSignIn, StaffAccount, StaffSession
from services.console.ports import AccountExists
from services.console.store import SESSIONS, MongoConsoleStore

NOW = datetime.now(UTC)  # sessions expire by a TTL index: a real "now"


@pytest.fixture
async def store(mongo) -> AsyncIterator[MongoConsoleStore]:
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True)
    db = client[f"console_store_{secrets.token_hex(4)}"]
    s = MongoConsoleStore(db)
    await s.ensure_indexes()
    yield s
    await client.drop_database(db.name)
    await client.close()


async def test_accounts_are_unique_and_saved_with_a_revision_check(store) -> None:
    account = StaffAccount.create("amina", "Amina", ["organiser"], "a long password!", NOW)
    await store.add_account(account)
    with pytest.raises(AccountExists):
        await store.add_account(account)
    loaded = await store.account("amina")
    assert loaded is not None and loaded.roles == {"organiser"}
    stale = await store.account("amina")
    loaded.failed_sign_ins = 2
    assert await store.save_account(loaded)
    assert not await store.save_account(stale)  # someone else wrote first
    assert (await store.account("amina")).failed_sign_ins == 2
    assert [a.id for a in await store.accounts()] == ["amina"]


async def test_sessions_are_kept_by_the_hash_of_their_id(store) -> None:
    session = StaffSession.start(
        "staff:amina", "Amina", frozenset({"organiser"}), "en", NOW, absolute=timedelta(hours=1)
    )
    await store.add_session(session)
    (doc,) = await store.db[SESSIONS].find({}).to_list()
    assert doc["_id"] == hashlib.sha256(session.id.encode()).hexdigest()
    assert session.id not in str(doc)
    loaded = await store.session(session.id)
    assert loaded is not None and loaded.csrf_token == session.csrf_token
    loaded.language = "sw"
    await store.save_session(loaded)
    assert (await store.session(session.id)).language == "sw"
    await store.end_session(session.id)
    assert await store.session(session.id) is None


async def test_an_oidc_state_is_taken_once(store) -> None:
    pending = PendingSignIn.start(NOW)
    await store.add_pending_sign_in(pending)
    taken = await store.take_pending_sign_in(pending.state)
    assert taken is not None and taken.code_verifier == pending.code_verifier
    assert await store.take_pending_sign_in(pending.state) is None
