"""Rate limits for public endpoints, shared by every instance of a service.

Fixed-window counters in the service's own MongoDB (one atomic ``$inc`` upsert per
hit), so two instances behind a load balancer enforce one limit together. Over the
limit: 429 in the common error shape with ``Retry-After``.

Not to be confused with ``shared.tokenbucket``: an in-process throttle on how fast one
worker may go (the notification senders), where this counts requests across instances.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.errors import ApiError
from shared.timeutil import epoch

COLLECTION = "rate_limits"


@dataclass(frozen=True)
class Limit:
    """At most ``hits`` per ``window_s`` seconds for one key."""

    hits: int
    window_s: int


class RateLimiter:
    def __init__(self, db: AsyncDatabase, *, enabled: bool = True) -> None:
        self._col = db[COLLECTION]
        self.enabled = enabled

    async def hit(self, scope: str, subject: str, limit: Limit) -> float | None:
        """Count one hit; returns seconds to wait if over the limit, else None."""
        if not self.enabled:
            return None
        now = epoch()
        window = int(now // limit.window_s)
        # Subjects (addresses, emails) are hashed: the counter holds no personal data.
        digest = hashlib.sha256(subject.encode()).hexdigest()[:24]
        key = f"{scope}:{digest}:{window}"
        for _ in range(2):
            try:
                doc = await self._col.find_one_and_update(
                    {"_id": key},
                    {"$inc": {"n": 1}, "$setOnInsert": {"expires": (window + 1) * limit.window_s}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                break
            except DuplicateKeyError:  # two first hits raced on the upsert: count again
                continue
        else:  # pragma: no cover
            return None
        if doc and int(doc.get("n", 0)) > limit.hits:
            return max(1.0, (window + 1) * limit.window_s - now)
        return None

    async def purge(self) -> int:
        """Drop expired windows (called now and then; a TTL index needs BSON dates)."""
        result = await self._col.delete_many({"expires": {"$lt": epoch()}})
        return result.deleted_count


def too_many(retry_after: float) -> ApiError:
    seconds = int(math.ceil(retry_after))
    return ApiError(
        429,
        "rate_limited",
        f"Too many requests; try again in {seconds} seconds.",
        headers={"Retry-After": str(seconds)},
    )


def client_address(request: Request) -> str:
    """The caller's address (uvicorn applies X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"


def rate_limited(dependency: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Mark a FastAPI dependency as a rate limit, so the OpenAPI documents the 429 of
    every route that depends on it (shared.http)."""
    dependency.mkutano_rate_limited = True  # type: ignore[attr-defined]
    return dependency


def limit_by_client(scope: str, limit: Limit) -> Callable[[Request], Awaitable[None]]:
    """FastAPI dependency: rate-limit a route per client address."""

    async def dependency(request: Request) -> None:
        limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
        if limiter is None:
            return
        wait = await limiter.hit(scope, client_address(request), limit)
        if wait is not None:
            raise too_many(wait)

    return rate_limited(dependency)


async def enforce(request: Request, scope: str, subject: str, limit: Limit) -> None:
    """Count one hit for ``subject``; raise 429 with ``Retry-After`` over the limit."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        return
    wait = await limiter.hit(scope, subject, limit)
    if wait is not None:
        raise too_many(wait)
