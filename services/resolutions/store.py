"""The resolutions service's MongoDB: conferences and resolutions.

A resolution document holds its actions, its timeline and its versions, so a change,
its timeline entry, its version record and its events are one atomic write (outbox
inside). Documents of an import still being written carry ``importing`` (the import
id) and are hidden from every read until the whole file is in.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.outbox import WriteSignal, ensure_outbox_indexes

CONFERENCES = "conferences"
RESOLUTIONS = "resolutions"
# Matches a missing field too: documents written outside an import have none.
VISIBLE: dict[str, Any] = {"importing": None}


class ResolutionsStore:
    def __init__(self, db: AsyncDatabase, *, signal: WriteSignal | None = None) -> None:
        # Reported after each write that leaves events to publish (the relay listens).
        self.signal = signal or WriteSignal()
        self.db = db
        self.conferences = db[CONFERENCES]
        self.resolutions = db[RESOLUTIONS]

    async def ensure_indexes(self) -> None:
        await self.resolutions.create_index(
            [("conference_id", ASCENDING), ("number", ASCENDING)], unique=True
        )
        await self.resolutions.create_index([("importing", ASCENDING)])
        await ensure_outbox_indexes(self.resolutions)

    async def get_conference(self, conference_id: str) -> dict[str, Any] | None:
        return await self.conferences.find_one({"_id": conference_id})

    async def list_conferences(self) -> list[dict[str, Any]]:
        return await self.conferences.find({}, sort=[("starts_on", -1)]).to_list()

    async def get_resolution(self, resolution_id: str) -> dict[str, Any] | None:
        return await self.resolutions.find_one({"_id": resolution_id, **VISIBLE})

    async def list_resolutions(self, conference_id: str) -> list[dict[str, Any]]:
        return await self.resolutions.find(
            {"conference_id": conference_id, **VISIBLE}, sort=[("number", ASCENDING)]
        ).to_list()

    async def resolution_numbers(self, conference_id: str) -> set[int]:
        """Every number taken in a conference, including by an import in progress."""
        docs = await self.resolutions.find(
            {"conference_id": conference_id}, {"number": 1}
        ).to_list()
        return {d["number"] for d in docs}
