"""Prometheus metrics, one registry per service process, and the gauges read on scrape.

Besides the ``mkutano_*`` families, ``/metrics`` carries the standard ``process_*`` and
``python_*`` collectors.

Counters are incremented where things happen (HTTP middleware, outbox relay, consumers,
senders). Gauges that describe state elsewhere — the outbox backlog in MongoDB, the lag
of each consumer behind its partitions in Kafka — are refreshed when ``/metrics`` or the
admin status is read (``refresh_gauges``), within a time bound, so a scrape never hangs
on a dependency that is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from shared.logging import get_logger

log = get_logger("metrics")


class Metrics:
    """The metrics every service exposes at ``/metrics``."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # The standard process_* (CPU, memory, open files) and python_* (interpreter, GC)
        # families every Prometheus client exposes: the collectors of the default registry,
        # which read this process only, also registered in the service's own registry.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)
        self.http_requests = Counter(
            "mkutano_http_requests_total",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "mkutano_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route", "method"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.events_published = Counter(
            "mkutano_events_published_total", "Events published by type", ["type"], registry=r
        )
        self.events_consumed = Counter(
            "mkutano_events_consumed_total",
            "Events consumed by type and outcome (applied, duplicate, ignored, dead_lettered)",
            ["type", "outcome"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "mkutano_dead_lettered_total", "Records sent to a dead-letter topic", registry=r
        )
        self.outbox_backlog = Gauge(
            "mkutano_outbox_backlog", "Events waiting in the outbox", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "mkutano_outbox_oldest_pending_age_seconds",
            "Age of the oldest event waiting in the outbox",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "mkutano_consumer_lag",
            "Records behind the end of each assigned partition",
            ["topic", "partition"],
            registry=r,
        )
        self.notifications = Counter(
            "mkutano_notifications_total",
            "Notifications by channel and outcome (sent, failed, retried)",
            ["channel", "outcome"],
            registry=r,
        )
        self.service = service
        self.info = Gauge(
            "mkutano_service_info", "The service this process runs", ["service"], registry=r
        )
        self.info.labels(service).set(1)


async def outbox_status(relay: Any) -> dict[str, Any]:
    """Pending outbox events and the age of the oldest (``OutboxRelay.backlog()``)."""
    if relay is None:
        return {"enabled": False, "backlog": 0, "oldest_pending_age_s": None}
    count, oldest = await relay.backlog()
    return {
        "enabled": True,
        "backlog": count,
        "oldest_pending_age_s": None if oldest is None else round(oldest, 3),
    }


async def consumer_lag(consumer: Any) -> list[dict[str, Any]]:
    """Records behind the end, per assigned partition, of one aiokafka consumer.

    ``consumer`` is the aiokafka consumer under a FastStream subscriber (None before the
    subscriber started). Lag = log end offset − the consumer's position.
    """
    if consumer is None:
        return []
    partitions = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
    if not partitions:
        return []
    ends = await consumer.end_offsets(partitions)
    rows = []
    for tp in partitions:
        position = await consumer.position(tp)
        end = ends.get(tp, position)
        rows.append(
            {
                "topic": tp.topic,
                "partition": tp.partition,
                "position": position,
                "end": end,
                "lag": max(0, end - position),
            }
        )
    return rows


async def collect_status(
    metrics: Metrics,
    relay: Any,
    consumers: Sequence[Any],
    *,
    timeout_s: float = 2.0,
) -> dict[str, Any]:
    """Outbox and consumer status of this process; also refreshes the gauges.

    ``consumers`` are ``shared.consumer.EventConsumer`` objects whose ``subscriber``
    attribute is their FastStream subscriber. Parts that do not answer within
    ``timeout_s`` are reported as ``"unavailable"`` and leave their gauges as they were.
    """
    status: dict[str, Any] = {"service": metrics.service}
    try:
        outbox = await asyncio.wait_for(outbox_status(relay), timeout_s)
        metrics.outbox_backlog.set(outbox["backlog"])
        metrics.outbox_oldest_age.set(outbox["oldest_pending_age_s"] or 0.0)
    except Exception as exc:  # MongoDB down: say so rather than fail the scrape
        outbox = {"enabled": relay is not None, "error": type(exc).__name__}
    status["outbox"] = outbox
    groups = []
    for c in consumers:
        sub = getattr(c, "subscriber", None)
        entry: dict[str, Any] = {
            "group": c.group_id,
            "topics": list(c.topics),
            "consumed": dict(c.stats.consumed),
            "duplicates": c.stats.duplicates,
            "retries": c.stats.retries,
            "dead_lettered": c.stats.dead_lettered,
        }
        try:
            rows = await asyncio.wait_for(consumer_lag(getattr(sub, "consumer", None)), timeout_s)
            entry["partitions"] = rows
            entry["lag"] = sum(r["lag"] for r in rows)
            for r in rows:
                metrics.consumer_lag.labels(r["topic"], str(r["partition"])).set(r["lag"])
        except Exception as exc:  # broker down or rebalancing
            entry["partitions"] = "unavailable"
            entry["error"] = type(exc).__name__
        groups.append(entry)
    status["consumers"] = groups
    return status


def install_status(app: Any, collect: Any) -> None:
    """``GET /api/v1/admin/status``: outbox and consumer status (admin or auditor)."""
    from fastapi import APIRouter, Depends

    from shared.auth import require_roles

    router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

    @router.get(
        "/status",
        summary="Outbox backlog and consumer lag of this service instance",
        dependencies=[Depends(require_roles("auditor"))],
    )
    async def status() -> dict[str, Any]:
        return await collect()

    app.include_router(router)
