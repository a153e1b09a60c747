"""Helpers the e2e and fault tests share: payload builders, HTTP and Kafka readers."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.stack import wait_until


def unique_id(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


def event_spec(**overrides: Any) -> dict[str, Any]:
    """A published event whose registration is open now; override any field."""
    now = datetime.now(UTC)
    event_id = overrides.pop("id", unique_id("ev"))
    spec = {
        "id": event_id,
        "code": event_id.upper()[:32],
        "title_sw": "Semina ya Serikali Mtandao",
        "title_en": "e-Government Seminar",
        "venue": "AICC",
        "city": "Arusha",
        "starts_at": (now + timedelta(days=30)).isoformat(),
        "ends_at": (now + timedelta(days=32)).isoformat(),
        "capacity": 100,
        "registration_opens_at": (now - timedelta(days=1)).isoformat(),
        "state": "published",
    }
    spec.update(overrides)
    return spec


def participant(**overrides: Any) -> dict[str, Any]:
    """A valid registration body with a unique email and phone."""
    n = secrets.randbelow(9_000_000) + 1_000_000
    body = {
        "full_name": "Asha Juma Mwinyi",
        "email": f"asha.{secrets.token_hex(4)}@example.go.tz",
        "phone": f"0712{n:06d}"[:10],
        "institution": "e-Government Authority",
        "position": "ICT Officer",
        "cadre": "ict_officer",
        "language": "sw",
        "consent": {"accepted": True},
    }
    body.update(overrides)
    return body


async def create_event(base_url: str, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.post(
            "/api/v1/events", json=event_spec(**overrides), headers=headers
        )
    assert response.status_code == 201, response.text
    return response.json()


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    value: dict[str, Any] | None

    @property
    def ce_type(self) -> str:
        return self.headers.get("ce_type", "")

    @property
    def ce_id(self) -> str:
        return self.headers.get("ce_id", "")


class TopicReader:
    """Reads whole topics from the beginning with plain aiokafka (no consumer group),
    as another e-GA system would; keeps everything it has seen."""

    def __init__(self, bootstrap: str, topics: Iterable[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.records: list[Record] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicReader:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self) -> list[Record]:
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=200)
        for tp, records in batch.items():
            for r in records:
                headers = {k: v.decode(errors="replace") for k, v in (r.headers or ())}
                try:
                    value = json.loads(r.value) if r.value else None
                except ValueError:
                    value = None
                # As a subscriber following the rules reads it: a value that is not a JSON
                # object is no event payload (a test publishes such a record on purpose).
                if not isinstance(value, dict):
                    value = None
                self.records.append(
                    Record(
                        tp.topic,
                        tp.partition,
                        r.offset,
                        r.key.decode() if r.key else None,
                        headers,
                        value,
                    )
                )
        return self.records

    async def wait_for(
        self,
        predicate: Any,
        *,
        count: int = 1,
        timeout: float = 15.0,  # noqa: ASYNC109
    ) -> list[Record]:
        async def check() -> list[Record] | None:
            await self.poll()
            found = [r for r in self.records if predicate(r)]
            return found if len(found) >= count else None

        return await wait_until(
            check,
            timeout=timeout,
            interval=0.05,
            message=lambda: (
                f"wanted {count} records; saw types {[r.ce_type for r in self.records][-20:]}"
            ),
        )


async def publish_raw(
    bootstrap: str, topic: str, *, key: str, headers: dict[str, str], value: bytes
) -> None:
    """Publish one record exactly as given (for duplicate and poison tests)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            value=value,
            key=key.encode(),
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
    finally:
        await producer.stop()


def cloudevent_headers(
    ce_type: str, *, ce_id: str | None = None, source: str = "/tests"
) -> dict[str, str]:
    return {
        "ce_specversion": "1.0",
        "ce_id": ce_id or str(uuid.uuid4()),
        "ce_source": source,
        "ce_type": ce_type,
        "ce_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "content-type": "application/json",
    }


async def gather_limited(coros: list[Any], limit: int = 20) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def run(c: Any) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(run(c) for c in coros))
