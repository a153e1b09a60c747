"""Helpers the benchmark phases share: events to register for, percentiles, waits."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


def create_event(base_url: str, headers: dict[str, str], capacity: int) -> str:
    """Create a published event whose registration is open now; returns its id."""
    now = datetime.now(UTC)
    event_id = f"bench-{secrets.token_hex(4)}"
    spec = {
        "id": event_id,
        "code": event_id.upper(),
        "title_sw": "Mkutano wa Serikali Mtandao (kipimo)",
        "title_en": "e-Government Conference (benchmark)",
        "venue": "AICC",
        "city": "Arusha",
        "starts_at": (now + timedelta(days=30)).isoformat(),
        "ends_at": (now + timedelta(days=32)).isoformat(),
        "capacity": capacity,
        "registration_opens_at": (now - timedelta(days=1)).isoformat(),
        "state": "published",
    }
    response = httpx.post(f"{base_url}/api/v1/events", json=spec, headers=headers, timeout=30)
    response.raise_for_status()
    return event_id


def percentiles(values: list[float], points: tuple[float, ...] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles plus max and mean, rounded to milliseconds' tenths."""
    if not values:
        return {}
    ordered = sorted(values)
    out = {f"p{p:g}": ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] for p in points}
    out["max"] = ordered[-1]
    out["mean"] = sum(ordered) / len(ordered)
    return {k: round(v, 1) for k, v in out.items()}


def wait_for(predicate: Callable[[], Any], timeout_s: float, poll_s: float = 0.05) -> float:
    """Poll ``predicate`` until truthy; returns the time.time() it became so. Bounded."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return time.time()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout_s:.0f}s")
        time.sleep(poll_s)
