"""One service process: MongoDB client, Kafka broker, outbox relay, consumers, workers, HTTP.

Every service's ``app.py`` builds a ``ServiceRuntime`` and adds its own parts, so the
services share one shape and one lifecycle:

start   MongoDB reachable (bounded wait) → indexes and seed → topics (dev/test) →
        HTTP serves → broker connects in the background, with retries → relay, workers.
stop    (SIGTERM/SIGINT) HTTP stops taking requests and finishes those in flight →
        consumers stop (their offsets are committed per record) → workers finish →
        the outbox is flushed within a bound → broker and MongoDB close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from faststream.specification import AsyncAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.asyncapi import add_consumed_messages, add_published_headers
from shared.auth import Authenticator
from shared.broker import make_broker
from shared.consumer import BatchOptions, EventConsumer, ProcessedEvents
from shared.contracts import stream_events
from shared.envelope import OutboxMessage, source_of
from shared.logging import configure_logging, get_logger
from shared.metrics import Metrics, collect_status
from shared.outbox import OutboxRelay, WriteSignal
from shared.settings import ServiceSettings
from shared.topics import all_topics, dead_letter_topic, ensure_topics
from shared.tracing import (
    SpanKind,
    configure_tracing,
    current_traceparent,
    span,
    traced_handler,
)
from shared.webapp import AppParts, AppSpec, build_service_app

Worker = Callable[[asyncio.Event], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]


class UndeclaredEventType(RuntimeError):
    """An outbox message of a type the service did not declare with ``publishes``."""


def connect_mongo(settings: ServiceSettings, name: str) -> AsyncMongoClient:
    """The service's MongoDB client (connects lazily; short timeouts so health answers)."""
    return AsyncMongoClient(
        settings.mongo_url,
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000,
        tz_aware=True,
        appname=f"mkutano-{name}",
    )


class ServiceRuntime:
    """Wires a service's adapters and runs them under one lifespan."""

    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        *,
        title: str,
        description: str,
        version: str = "1.0.0",
        non_json_paths: list[str] | None = None,
        max_body_bytes: int = 64 * 1024,
        error_statuses: dict[str, int] | None = None,
    ) -> None:
        configure_logging(name, fmt=settings.log.format, level=settings.log.level)
        self.name = name
        self.settings = settings
        self.log = get_logger(name)
        self.metrics = Metrics(name)
        self.tracing = configure_tracing(name)
        self.mongo = connect_mongo(settings, name)
        self.db: AsyncDatabase = self.mongo[settings.mongo_db]
        self.broker = make_broker(settings.kafka, service=name, description=description)
        self.asyncapi = AsyncAPI(
            self.broker, title=f"Mkutano {name}", version=version, description=description
        )
        key = settings.core.bootstrap_admin_key
        self.authenticator = Authenticator(key.get_secret_value() if key else None)
        self.processed = ProcessedEvents(self.db)
        # The store reports its writes here; the relay (and notification's senders) listen.
        self.signal = WriteSignal()
        self.relay: OutboxRelay | None = None
        # ce_type -> the declared publisher of its stream (``publishes``).
        self.publishers: dict[str, Any] = {}
        self.consumers: list[EventConsumer] = []
        self.workers: list[tuple[str, Worker]] = []
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.broker_connected = False
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.app, self.api_keys = build_service_app(
            AppSpec(title, description, version, non_json_paths, max_body_bytes, error_statuses),
            AppParts(
                db=self.db,
                metrics=self.metrics,
                authenticator=self.authenticator,
                status=self.status,
                readiness=[self._check_mongo, self._check_kafka],
                asyncapi=self.asyncapi_document,
                rate_limits=settings.rate_limits,
            ),
            self._lifespan,
        )
        self.app.state.runtime = self

    # -- composition ---------------------------------------------------------------

    def use_outbox(self, collections: list[str]) -> OutboxRelay:
        """Relay the outboxes of these collections to Kafka."""
        self.relay = OutboxRelay(
            self.db,
            collections,
            self.publish,
            poll_interval_s=self.settings.outbox_poll_interval_s,
            scan_interval_s=self.settings.outbox_scan_interval_s,
            lease_s=self.settings.outbox_lease_s,
            on_published=lambda m: self.metrics.events_published.labels(m.type).inc(),
        )
        self.signal.listen(self.relay.hint)
        return self.relay

    def publishes(self, topic: str) -> None:
        """Declare the stream this service owns: one publisher per event type of it.

        The event types come from ``shared.contracts`` (every class whose ``topic`` is
        this stream), so the AsyncAPI document lists exactly what can go out, and the
        relay publishes through these publishers only: an event type that is not
        declared here cannot be published at all.
        """
        for cls in stream_events(topic):
            ce_type = cls.ce_type()
            self.publishers[ce_type] = self.broker.publisher(
                topic,
                title=f"{topic}:{ce_type}",
                description=(cls.__doc__ or "").strip(),
                schema=cls,
            )

    def add_consumer(
        self,
        *,
        group_id: str,
        topics: list[str],
        handlers: dict[Any, Any],
        description: str = "",
        bulk_handlers: dict[Any, Any] | None = None,
    ) -> EventConsumer:
        """A consumer group. It takes its records in batches when the service's settings
        say so (``<SERVICE>_CONSUMER_BATCH_MAX_RECORDS`` > 0, ``BatchOptions.of``),
        applying runs of the events ``bulk_handlers`` name in one call each
        (shared.consumer); otherwise one by one, and ``bulk_handlers`` go unused."""
        consumer = EventConsumer(
            service=self.name,
            group_id=group_id,
            topics=topics,
            handlers={cls: traced_handler(h, group_id) for cls, h in handlers.items()},
            processed=self.processed,
            dead_letter_topic=dead_letter_topic(self.name),
            max_attempts=self.settings.consumer_max_attempts,
            retry_base_s=self.settings.consumer_retry_base_s,
            on_consumed=self._count_consumed,
            batch=BatchOptions.of(self.settings),
            bulk_handlers=bulk_handlers,
        )
        # Kept on the consumer: its aiokafka consumer gives the lag per partition.
        consumer.subscriber = consumer.attach(  # type: ignore[attr-defined]
            self.broker, self.settings.kafka, description=description
        )
        self.consumers.append(consumer)
        return consumer

    def _count_consumed(self, ce_type: str, outcome: str) -> None:
        self.metrics.events_consumed.labels(ce_type, outcome).inc()
        if outcome == "dead_lettered":
            self.metrics.dead_lettered.inc()

    async def status(self) -> dict[str, Any]:
        """Outbox backlog and consumer lag now (refreshes the matching gauges)."""
        return await collect_status(self.metrics, self.relay, self.consumers)

    def add_worker(self, name: str, worker: Worker) -> None:
        """A background loop that runs until the stop event is set."""
        self.workers.append((name, worker))

    def on_startup(self, hook: Hook) -> Hook:
        self.startup_hooks.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Run once the workers have stopped (close channel connections and the like)."""
        self.shutdown_hooks.append(hook)
        return hook

    async def publish(self, message: OutboxMessage) -> None:
        """Publish one outbox message as a binary-mode CloudEvent, waiting for the ack."""
        if not self.broker_connected:
            raise ConnectionError("broker not connected yet")
        with span(
            f"publish {message.topic}",
            traceparent=message.traceparent,
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.message.id": message.id},
        ):
            publisher = self.publishers.get(message.type)
            if publisher is None:
                raise UndeclaredEventType(
                    f"{message.type} is not declared on a stream of {self.name}"
                )
            headers = message.headers()
            if message.traceparent:  # the consumer's span becomes a child of this one
                headers["traceparent"] = current_traceparent() or message.traceparent
            await publisher.publish(
                message.value(),
                topic=message.topic,
                key=message.key.encode(),
                headers=headers,
            )

    def asyncapi_document(self) -> dict[str, Any]:
        """The AsyncAPI 3.0 document: every message with its payload schema and headers."""
        document = self.asyncapi.to_specification().to_jsonable()
        add_published_headers(document, self.publishers, source_of(self.name))
        for consumer in self.consumers:
            add_consumed_messages(document, consumer.title, consumer.handled_by_topic())
        return document

    # -- health --------------------------------------------------------------------

    async def _check_mongo(self) -> tuple[str, bool]:
        try:
            await asyncio.wait_for(self.mongo.admin.command("ping"), 1.5)
            return "mongodb", True
        except Exception:
            return "mongodb", False

    async def _check_kafka(self) -> tuple[str, bool]:
        if not self.broker_connected:
            return "kafka", False
        try:
            return "kafka", bool(await self.broker.ping(timeout=1.5))
        except Exception:
            return "kafka", False

    # -- lifecycle -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        await self._wait_for_mongo(timeout_s=60)
        for hook in self.startup_hooks:
            await hook()
        if self.settings.kafka.create_topics:
            try:
                await ensure_topics(
                    self.settings.kafka.bootstrap_servers,
                    all_topics(
                        retention_days=self.settings.kafka.topic_retention_days,
                        private_retention_days=self.settings.kafka.private_topic_retention_days,
                    ),
                    timeout_s=5,
                )
            except Exception as exc:  # the broker may come later; the dev stack creates them too
                self.log.warning("topics_not_created", error=type(exc).__name__)
        self._tasks.append(asyncio.create_task(self._connect_broker(), name="broker-connect"))
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self.relay.run(self.stopping), name="relay"))
        for name, worker in self.workers:
            self._tasks.append(asyncio.create_task(self._guard(name, worker), name=name))
        self.log.info("service_started", port=self.settings.http_port)
        try:
            yield
        finally:
            await self._shutdown()

    async def _wait_for_mongo(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            _, ok = await self._check_mongo()
            if ok:
                return
            if loop.time() > deadline:
                raise RuntimeError(f"MongoDB not reachable at startup within {timeout_s}s")
            await asyncio.sleep(0.5)

    async def _connect_broker(self) -> None:
        delay = 0.2
        while not self.stopping.is_set():
            try:
                await self.broker.start()
                self.broker_connected = True
                self.log.info("broker_connected")
                if self.relay is not None:
                    self.relay.wake()
                return
            except Exception as exc:
                self.log.warning(
                    "broker_connect_failed", error=type(exc).__name__, retry_in_s=delay
                )
                with contextlib.suppress(Exception):
                    await self.broker.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _guard(self, name: str, worker: Worker) -> None:
        """Keep a worker alive: log and restart it if it fails, until stopping."""
        while not self.stopping.is_set():
            try:
                await worker(self.stopping)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.error("worker_failed", worker=name, error=type(exc).__name__, exc_info=exc)
                await asyncio.sleep(1.0)

    async def _shutdown(self) -> None:
        grace = self.settings.shutdown_grace_s
        self.log.info("service_stopping")
        self.stopping.set()
        # Consumers first: no new work; each applied record was already committed.
        for sub in list(self.broker.subscribers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sub.stop(), grace / 2)
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            done, still = await asyncio.wait(pending, timeout=grace / 2)
            for t in still:
                t.cancel()
        for hook in self.shutdown_hooks:
            try:
                await asyncio.wait_for(hook(), 5)
            except Exception as exc:
                self.log.warning("shutdown_hook_failed", error=type(exc).__name__)
        if self.relay is not None and self.broker_connected:
            flushed = await self.relay.flush(timeout_s=grace / 2)
            self.log.info("outbox_flushed", events=flushed)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.broker.stop(), 5)
        await self.mongo.close()
        self.log.info("service_stopped")

    def run(self) -> None:
        """Serve HTTP until SIGTERM/SIGINT, then stop gracefully (see shared.serving:
        trusted proxies, header and keep-alive timeouts)."""
        from shared.serving import serve

        serve(
            self.app,
            host=self.settings.http_host,
            port=self.settings.http_port,
            graceful_shutdown_s=self.settings.shutdown_grace_s,
        )
