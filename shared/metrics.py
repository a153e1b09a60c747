"""Prometheus metrics, one registry per service process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The metrics every service exposes at ``/metrics``."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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
