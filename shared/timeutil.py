"""Time helpers.

Times are stored as fixed-width ISO-8601 UTC strings (``2025-02-11T06:00:00.000000Z``):
they sort and compare as strings the same way in MongoDB and in the embedded
server (which turns ``$set`` datetimes into strings), so queries on them are portable.
Leases and schedules that need arithmetic are stored as epoch seconds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

EAT = ZoneInfo("Africa/Dar_es_Salaam")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """Fixed-width UTC ISO string, comparable as text."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_iso() -> str:
    return iso(utcnow())


def epoch() -> float:
    return time.time()
