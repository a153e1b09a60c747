"""The rate limiter against the real MongoDB protocol: one limit across instances."""

from __future__ import annotations

import asyncio

from pymongo import AsyncMongoClient

from shared.ratelimit import Limit, RateLimiter
from tests.helpers import unique_id


async def test_limit_is_shared_by_two_instances_and_says_when_to_retry(mongo) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo.url)
    try:
        db = client[unique_id("rl").replace("-", "_")]
        first, second = RateLimiter(db), RateLimiter(db)  # two service instances
        limit = Limit(hits=10, window_s=60)
        results = await asyncio.gather(
            *(
                (first if i % 2 else second).hit("register-ip", "196.41.32.7", limit)
                for i in range(25)
            )
        )
        refused = [r for r in results if r is not None]
        assert len(refused) == 15
        assert all(0 < r <= 60 for r in refused)
        # Another client is not affected.
        assert await first.hit("register-ip", "196.41.32.8", limit) is None
        # Nothing personal is stored: the subject is hashed.
        docs = await db["rate_limits"].find().to_list()
        assert docs and all("196.41" not in d["_id"] for d in docs)
    finally:
        await client.close()
