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

Batch mode (``BatchOptions.of(settings)``: ``<SERVICE>_CONSUMER_BATCH_MAX_RECORDS`` and
``<SERVICE>_CONSUMER_BATCH_TIMEOUT_MS``; notification, payments and webhooks use it, the
others consume one by one): the records of one poll (up to ``max_records``) are
deduplicated with one query, consecutive records whose handler has a bulk form (``bulk_handlers``) are applied in one call, their ids
recorded with one ``insert_many``, and the batch's offsets committed once, after all of
its effects are stored. A bulk call that fails is not retried as a whole: its events are
applied one by one with the usual bounded retries, so a poison record goes to the
dead-letter topic and the rest of the batch goes on. An infrastructure failure rewinds
every partition of the batch to its first record (the replay is deduplicated).
"""

from __future__ import annotations

import asyncio
import random
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import WithJsonSchema
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, PyMongoError

from shared.broker import subscriber_options
from shared.contracts import IntegrationEvent, event_class
from shared.envelope import EnvelopeError, InvalidPayload, ReceivedEvent, decode_headers, parse
from shared.logging import get_logger
from shared.settings import KafkaSettings, ServiceSettings
from shared.timeutil import now_iso

Handler = Callable[[ReceivedEvent], Awaitable[None]]
# What a batch subscriber is handed: the records' bytes. Documented (AsyncAPI) as what
# is on the wire, one record's bytes, like the one-by-one subscriber's.
BatchBody = Annotated[list[bytes], WithJsonSchema({"type": "string", "format": "binary"})]
# Applies several events of one kind, in their order, in bulk writes (batch mode).
BulkHandler = Callable[[list[ReceivedEvent]], Awaitable[None]]
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

    async def seen_many(self, event_ids: list[str]) -> set[str]:
        """Which of these events were applied already: one query by ``_id``."""
        if not event_ids:
            return set()
        cursor = self._col.find({"_id": {"$in": event_ids}}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def record_many(self, events: list[ReceivedEvent]) -> None:
        """Record applied events in one ``insert_many``; ones recorded already (a replay,
        another instance) are left as they are."""
        if not events:
            return
        at = now_iso()
        docs = [
            {"_id": r.id, "type": r.type, "source": r.source, "processed_at": at} for r in events
        ]
        try:
            await self._col.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise


@dataclass(frozen=True)
class BatchOptions:
    """A consumer that takes its records in batches (FastStream's batch subscriber)."""

    max_records: int = 200
    timeout_ms: int = 50

    @classmethod
    def of(cls, settings: ServiceSettings) -> BatchOptions | None:
        """A service's batches (``consumer_batch_max_records``, ``consumer_batch_timeout_ms``
        of its settings); None, one record at a time, when ``max_records`` is 0."""
        if settings.consumer_batch_max_records <= 0:
            return None
        return cls(settings.consumer_batch_max_records, settings.consumer_batch_timeout_ms)


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
        batch: BatchOptions | None = None,
        bulk_handlers: Mapping[type[IntegrationEvent], BulkHandler] | None = None,
    ) -> None:
        self.service = service
        self.group_id = group_id
        self.topics = topics
        self.handlers = {cls.ce_type(): h for cls, h in handlers.items()}
        self.batch = batch
        self.bulk_handlers = {cls.ce_type(): h for cls, h in (bulk_handlers or {}).items()}
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

        batching: dict[str, Any] = {}
        if self.batch is not None:
            batching = {
                "batch": True,
                "max_records": self.batch.max_records,
                "batch_timeout_ms": self.batch.timeout_ms,
            }
        subscriber = broker.subscriber(
            *self.topics,
            **subscriber_options(settings, group_id=self.group_id),
            **batching,
            decoder=raw,
            title=self.title,
            description=description
            or f"Consumer group '{self.group_id}'. Handles: {', '.join(sorted(self.handlers))}",
        )

        if self.batch is not None:

            @subscriber
            async def on_batch(body: BatchBody, msg: KafkaMessage) -> None:
                await self.handle_batch(msg)

        else:

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
            await self._pause_after(exc, record)
            await msg.nack()
            return
        self._infra_failures = 0
        await self._commit(msg)
        if self._on_consumed:
            self._on_consumed(headers.get("ce_type", "unknown"), outcome)

    async def _pause_after(self, exc: BaseException, record: Any) -> None:
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

    async def _commit(self, msg: KafkaMessage) -> None:
        try:
            await msg.ack()
        except KafkaError as exc:  # rebalance or broker gone: the records come back, deduplicated
            log.warning("consumer_commit_failed", group=self.group_id, error=type(exc).__name__)

    async def handle_batch(self, msg: KafkaMessage) -> None:
        """Apply one poll's records, in their order; commit once all are applied or
        dead-lettered; on an infrastructure failure rewind the batch (nothing committed)."""
        raw = msg.raw_message
        records = list(raw) if isinstance(raw, (tuple, list)) else [raw]
        if not records:
            await self._commit(msg)
            return
        try:
            outcomes = await self._apply_batch(records)
        except INFRA_ERRORS as exc:
            await self._pause_after(exc, records[0])
            await msg.nack()
            return
        self._infra_failures = 0
        await self._commit(msg)
        if self._on_consumed:
            for ce_type, outcome in outcomes:
                self._on_consumed(ce_type, outcome)

    async def _apply_batch(self, records: list[Any]) -> list[tuple[str, str]]:
        outcomes: list[tuple[str, str]] = []
        # (record, headers, event) of the records to apply, in the batch's order.
        todo: list[tuple[Any, dict[str, str], ReceivedEvent]] = []
        for record in records:
            headers = decode_headers(getattr(record, "headers", None))
            ce_type = headers.get("ce_type", "unknown")
            try:
                received = parse(headers, record.value, record.key)
            except EnvelopeError as exc:
                reason = "invalid_payload" if isinstance(exc, InvalidPayload) else "unknown_type"
                await self._dead_letter(record, headers, reason, str(exc), attempts=0)
                outcomes.append((ce_type, "dead_lettered"))
                continue
            if received.type not in self.handlers:
                outcomes.append((ce_type, "ignored"))
                continue
            todo.append((record, headers, received))
        seen = await self.processed.seen_many([r.id for _, _, r in todo])
        fresh = []
        for item in todo:
            received = item[2]
            if received.id in seen:
                self.stats.duplicates += 1
                log.info("duplicate_skipped", ce_id=received.id, ce_type=received.type)
                outcomes.append((received.type, "duplicate"))
                continue
            seen.add(received.id)  # the same event twice in one batch: applied once
            fresh.append(item)
        applied: list[ReceivedEvent] = []
        i = 0
        while i < len(fresh):
            bulk = self.bulk_handlers.get(fresh[i][2].type)
            j = i + 1
            if bulk is not None:  # the run of consecutive records with the same bulk form
                while j < len(fresh) and self.bulk_handlers.get(fresh[j][2].type) is bulk:
                    j += 1
            run = fresh[i:j]
            i = j
            if bulk is not None and len(run) > 1:
                try:
                    await bulk([r for _, _, r in run])
                except INFRA_ERRORS:
                    raise
                except Exception as exc:  # one by one, so a poison record is isolated
                    log.warning(
                        "bulk_handler_failed", group=self.group_id, events=len(run),
                        error=type(exc).__name__,
                    )  # fmt: skip
                else:
                    for _, _, received in run:
                        applied.append(received)
                        outcomes.append((received.type, "applied"))
                    continue
            for record, headers, received in run:
                outcome = await self._run_handler(record, headers, received, record_id=False)
                if outcome == "applied":
                    applied.append(received)
                outcomes.append((received.type, outcome))
        await self.processed.record_many(applied)
        for received in applied:
            self.stats.consumed[received.type] = self.stats.consumed.get(received.type, 0) + 1
        return outcomes

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
        return await self._run_handler(record, headers, received, record_id=True)

    async def _run_handler(
        self, record: Any, headers: dict[str, str], received: ReceivedEvent, *, record_id: bool
    ) -> str:
        """The handler with bounded retries, then the dead-letter topic."""
        handler = self.handlers[received.type]
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
        if record_id:
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
