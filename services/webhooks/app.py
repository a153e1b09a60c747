"""Webhooks service bootstrap: settings, store, adapters, consumers, senders, routes."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from services.webhooks import api, handlers
from services.webhooks.adapters import (
    DnsResolver,
    HttpTransport,
    SecretsCipher,
    SmtpOwnerMailer,
)
from services.webhooks.consumers import register_consumers
from services.webhooks.ports import OwnerMailer, Resolver, Transport
from services.webhooks.settings import WebhooksSettings
from services.webhooks.store import WebhooksStore
from services.webhooks.workers import Dispatcher, run_owner_notices
from shared.runtime import ServiceRuntime


def create_runtime(
    settings: WebhooksSettings | None = None,
    *,
    transport: Transport | None = None,
    resolver: Resolver | None = None,
    mailer: OwnerMailer | None = None,
) -> ServiceRuntime:
    """Wire the webhooks service: the consumer group, the senders and the admin API.

    It owns no stream (it publishes nothing): no outbox relay, no ``publishes``.
    """
    settings = settings or WebhooksSettings()
    runtime = ServiceRuntime(
        "webhooks",
        settings,
        title="Mkutano webhooks",
        description="Signed HTTP deliveries (Standard Webhooks, CloudEvents JSON) of the "
        "public streams to subscribed e-GA systems, retried, in order per aggregate, with a "
        "delivery log. Consumes registration.v1, resolutions.v1 and notification.v1.",
        error_statuses=api.ERROR_STATUSES,
    )
    store = WebhooksStore(
        runtime.db, signal=runtime.signal, cipher=SecretsCipher.for_settings(settings)
    )
    http = transport or HttpTransport(settings)
    ctx = handlers.Context(
        store=store,
        settings=settings,
        transport=http,
        resolver=resolver or DnsResolver(),
        mailer=mailer or SmtpOwnerMailer(settings.smtp),
    )
    attempts = Counter(
        "mkutano_webhook_attempts_total",
        "Webhook delivery attempts by outcome (delivered, retrying, failed)",
        ["outcome"],
        registry=runtime.metrics.registry,
    )
    latency = Histogram(
        "mkutano_webhook_attempt_duration_seconds",
        "Time a receiver took to answer an attempt",
        registry=runtime.metrics.registry,
        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )

    def observe(outcome: str, latency_ms: int) -> None:
        attempts.labels(outcome).inc()
        latency.observe(latency_ms / 1000)

    ctx.on_attempt = observe
    runtime.app.state.context = ctx
    register_consumers(runtime, ctx)
    dispatcher = Dispatcher(ctx)
    runtime.signal.listen(dispatcher.hint)  # the store reports deliveries due now
    runtime.add_worker("senders", dispatcher.run)
    runtime.add_worker("owner-notices", lambda stop: run_owner_notices(ctx, stop))
    runtime.app.include_router(api.router)
    runtime.on_startup(store.ensure_indexes)
    if hasattr(http, "close"):
        runtime.on_shutdown(http.close)
    return runtime
