"""The resolutions service's MongoDB: conferences and resolutions.

A resolution document holds its timeline and its versions, so a change, its timeline
entry, its version record and its event are one atomic write (outbox inside).
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.outbox import ensure_outbox_indexes

CONFERENCES = "conferences"
RESOLUTIONS = "resolutions"


class ResolutionsStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.conferences = db[CONFERENCES]
        self.resolutions = db[RESOLUTIONS]

    async def ensure_indexes(self) -> None:
        await self.resolutions.create_index(
            [("conference_id", ASCENDING), ("number", ASCENDING)], unique=True
        )
        await ensure_outbox_indexes(self.resolutions)

    async def get_conference(self, conference_id: str) -> dict[str, Any] | None:
        return await self.conferences.find_one({"_id": conference_id})

    async def list_conferences(self) -> list[dict[str, Any]]:
        return await self.conferences.find({}, sort=[("starts_on", -1)]).to_list()

    async def get_resolution(self, resolution_id: str) -> dict[str, Any] | None:
        return await self.resolutions.find_one({"_id": resolution_id})

    async def list_resolutions(self, conference_id: str) -> list[dict[str, Any]]:
        return await self.resolutions.find(
            {"conference_id": conference_id}, sort=[("number", ASCENDING)]
        ).to_list()
