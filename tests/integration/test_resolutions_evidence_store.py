"""The resolutions service's evidence files and reminders on the real MongoDB (GridFS
works on the embedded nx-27017 as on MongoDB): a file kept once under its hash, read
back whole; a reminder's key fires once, its notice in the same write."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient

from services.resolutions.domain import Reminder, check_evidence
from services.resolutions.ports import AlreadyTaken
from services.resolutions.store import GridFSEvidenceStore, MongoResolutionsStore
from tests.stack import MongoServer


@pytest.fixture
async def db(mongo: MongoServer) -> AsyncIterator:
    client: AsyncMongoClient = AsyncMongoClient(mongo.url, tz_aware=True)
    name = f"mkutano_resolutions_ev_{secrets.token_hex(4)}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


async def test_an_evidence_file_is_kept_once_under_its_hash_and_read_back_whole(db) -> None:
    store = GridFSEvidenceStore(db)
    data = b"%PDF-1.4\n" + os.urandom(3 * 1024 * 1024)  # several GridFS chunks
    file = check_evidence(data, "ripoti.pdf", max_bytes=10 * 1024 * 1024)
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    await store.put(file)
    await store.put(file)  # the same bytes again: kept once
    kept = await db["evidence.files"].find({}, {"_id": 1}).to_list()
    assert [d["_id"] for d in kept] == [file.sha256]
    back = await store.get(file.sha256)
    assert back is not None and back.data == data and back.media_type == "application/pdf"
    assert await store.get("0" * 64) is None


async def test_a_reminder_fires_once_per_key(db) -> None:
    store = MongoResolutionsStore(db)
    await store.ensure_indexes()
    now = datetime(2026, 3, 2, tzinfo=UTC)

    def reminder() -> Reminder:
        return Reminder(
            id="res-1:overdue:2026-02-20:0",
            conference_id="egov-2025",
            resolution_id="res-1",
            rule="overdue",
            at=now.isoformat(),
        )

    await store.insert_reminder(reminder())
    with pytest.raises(AlreadyTaken):
        await store.insert_reminder(reminder())
    assert await db["reminders"].count_documents({}) == 1
