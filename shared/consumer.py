"""Idempotent, at-least-once event consumption with bounded retries and a dead-letter topic.

For each record the runtime:
1. parses the CloudEvent (an unknown type or an invalid payload goes straight to the
   service's dead-letter topic: retrying cannot fix it);
2. skips it if its ``ce_id`` was already applied (``processed_events``, unique ``_id``);
3. runs the handler, retrying a failing one a bounded number of times with backoff,
   then dead-letters it with the error in the headers;
4. records the ``ce_id`` and commits the offset (manual ack) only after 2–3.

Infrastructure failures (MongoDB or the broker unreachable) are not the event's
fault: the record is not acked, the consumer seeks back to it and tries again after
a pause, so nothing is dead-lettered or lost while a dependency is down.
Handlers must be idempotent in their own writes too (keyed on the event id), since a
crash between the effect and step 4 replays the event.
"""

from __future__ import annotations

import asyncio
import random
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker, KafkaMessage
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from shared.broker import subscriber_options
from shared.contracts import IntegrationEvent, event_class
from shared.envelope import EnvelopeError, InvalidPayload, ReceivedEvent, decode_headers, parse
from shared.logging import get_logger
from shared.settings import KafkaSettings
from shared.timeutil import now_iso

Handler = Callable[[ReceivedEvent], Awaitable[None]]
log = get_logger("consumer")

INFRA_ERRORS: tuple[type[BaseException], ...] = (ConnectionFailure, KafkaError, OSError)


class ProcessedEvents:
    """The ids of applied CloudEvents (the idempotency record of one consumer group)."""

    def __init__(self, database: AsyncDatabase, collection: str = "processed_events") -> None:
        self._col = database[collection]

    async def seen(self, event_id: str) -> bool:
        return await self._col.find_one({"_id": event_id}, {"_id": 1}) is not None

    async def record(self, received: ReceivedEvent) -> bool:
        """Record an applied event; False if it was recorded already."""
        try:
            await self._col.insert_one(
                {
                    "_id": received.id,
                    "type": received.type,
                    "source": received.source,
                    "processed_at": now_iso(),
                }
            )
            return True
        except DuplicateKeyError:
            return False


@dataclass
class ConsumerStats:
    consumed: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0


class EventConsumer:
    """One consumer group's subscription to some topics, with its handlers by event class."""

    def __init__(
        self,
        *,
        service: str,
        group_id: str,
        topics: list[str],
        handlers: Mapping[type[IntegrationEvent], Handler],
        processed: ProcessedEvents,
        dead_letter_topic: str,
        max_attempts: int = 5,
        retry_base_s: float = 0.2,
        on_consumed: Callable[[str, str], None] | None = None,
    ) -> None:
        self.service = service
        self.group_id = group_id
        self.topics = topics
        self.handlers = {cls.ce_type(): h for cls, h in handlers.items()}
        self.processed = processed
        self.dead_letter_topic = dead_letter_topic
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.stats = ConsumerStats()
        self._on_consumed = on_consumed
        self._broker: KafkaBroker | None = None
        self._infra_failures = 0

    @property
    def title(self) -> str:
        """The subscriber's name in the AsyncAPI document."""
        return f"{self.group_id}:{'+'.join(self.topics)}"

    def handled_by_topic(self) -> dict[str, list[str]]:
        """The ce_types this group handles on each of its topics."""
        by_topic: dict[str, list[str]] = {topic: [] for topic in self.topics}
        for ce_type in self.handlers:
            cls = event_class(ce_type)
            if cls is not None and cls.topic in by_topic:
                by_topic[cls.topic].append(ce_type)
        return by_topic

    def attach(self, broker: KafkaBroker, settings: KafkaSettings, *, description: str = "") -> Any:
        """Register the subscriber on the broker (AsyncAPI documents it from here)."""
        self._broker = broker

        async def raw(msg: Any) -> Any:  # keep the bytes: the runtime validates itself
            return msg.body

        subscriber = broker.subscriber(
            *self.topics,
            **subscriber_options(settings, group_id=self.group_id),
            decoder=raw,
            title=self.title,
            description=description
            or f"Consumer group '{self.group_id}'. Handles: {', '.join(sorted(self.handlers))}",
        )

        @subscriber
        async def on_record(body: bytes, msg: KafkaMessage) -> None:
            await self.handle(msg)

        return subscriber

    async def handle(self, msg: KafkaMessage) -> None:
        """Apply one record exactly once in effect; ack, or seek back on infra failure."""
        record = msg.raw_message
        headers = decode_headers(getattr(record, "headers", None))
        try:
            outcome = await self._apply(record, headers)
        except INFRA_ERRORS as exc:
            self._infra_failures += 1
            delay = min(5.0, 0.1 * 2 ** min(self._infra_failures, 8))
            log.warning(
                "consumer_infra_failure",
                group=self.group_id,
                topic=record.topic,
                offset=record.offset,
                error=type(exc).__name__,
                retry_in_s=round(delay, 2),
            )
            await asyncio.sleep(delay)
            await msg.nack()
            return
        self._infra_failures = 0
        try:
            await msg.ack()
        except KafkaError as exc:  # rebalance or broker gone: the record comes back, deduplicated
            log.warning("consumer_commit_failed", group=self.group_id, error=type(exc).__name__)
        if self._on_consumed:
            self._on_consumed(headers.get("ce_type", "unknown"), outcome)

    async def _apply(self, record: Any, headers: dict[str, str]) -> str:
        try:
            received = parse(headers, record.value, record.key)
        except EnvelopeError as exc:
            reason = "invalid_payload" if isinstance(exc, InvalidPayload) else "unknown_type"
            if headers.get("ce_type") and headers.get("ce_id") and reason == "unknown_type":
                reason = "unknown_type"
            await self._dead_letter(record, headers, reason, str(exc), attempts=0)
            return "dead_lettered"
        handler = self.handlers.get(received.type)
        if handler is None:
            return "ignored"  # a known event this group does not act on
        if await self.processed.seen(received.id):
            self.stats.duplicates += 1
            log.info("duplicate_skipped", ce_id=received.id, ce_type=received.type)
            return "duplicate"
        attempt = 0
        while True:
            attempt += 1
            try:
                await handler(received)
                break
            except INFRA_ERRORS:
                raise
            except PyMongoError as exc:
                if attempt >= self.max_attempts:
                    await self._dead_letter(record, headers, "handler_failed", repr(exc), attempt)
                    return "dead_lettered"
            except Exception as exc:
                if attempt >= self.max_attempts:
                    log.error(
                        "handler_failed",
                        ce_id=received.id,
                        ce_type=received.type,
                        attempts=attempt,
                        error=type(exc).__name__,
                    )
                    detail = "".join(traceback.format_exception_only(exc)).strip()
                    await self._dead_letter(record, headers, "handler_failed", detail, attempt)
                    return "dead_lettered"
            self.stats.retries += 1
            delay = self.retry_base_s * 2 ** (attempt - 1)
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        await self.processed.record(received)
        self.stats.consumed[received.type] = self.stats.consumed.get(received.type, 0) + 1
        return "applied"

    async def _dead_letter(
        self, record: Any, headers: dict[str, str], reason: str, error: str, attempts: int
    ) -> None:
        assert self._broker is not None, "attach() first"
        dlq_headers = {
            **headers,
            "dlq_reason": reason,
            "dlq_error": error[:1000],
            "dlq_attempts": str(attempts),
            "dlq_group": self.group_id,
            "dlq_original_topic": record.topic,
            "dlq_original_partition": str(record.partition),
            "dlq_original_offset": str(record.offset),
            "dlq_failed_at": now_iso(),
        }
        await self._broker.publish(
            record.value or b"",
            topic=self.dead_letter_topic,
            key=record.key,
            headers=dlq_headers,
        )
        self.stats.dead_lettered += 1
        log.warning(
            "dead_lettered",
            group=self.group_id,
            reason=reason,
            topic=record.topic,
            offset=record.offset,
            ce_id=headers.get("ce_id"),
            ce_type=headers.get("ce_type"),
        )
