"""The senders (workers.Dispatcher) on the fake store: a slow receiver holds at most its
in-flight bound, other subscriptions go on; retries come back on their own timer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from services.webhooks import handlers
from services.webhooks.ports import PostOutcome
from services.webhooks.settings import WebhooksSettings
from services.webhooks.workers import Dispatcher
from tests.stack import wait_until
from tests.unit.fakes.webhooks import FakeMailer, FakeResolver, FakeWebhooksStore
from tests.unit.test_webhooks_domain import registered
from tests.unit.test_webhooks_handlers import received, spec

SLOW = "https://slow.example.go.tz/hook"
FAST = "https://fast.example.go.tz/hook"


class GatedTransport:
    """Posts to SLOW wait for ``gate``; the first ``fail_first`` posts to FAST fail."""

    def __init__(self, fail_first: int = 0) -> None:
        self.gate = asyncio.Event()
        self.in_flight = {SLOW: 0, FAST: 0}
        self.most_in_flight = {SLOW: 0, FAST: 0}
        self.done: list[tuple[str, str]] = []
        self.fail_first = fail_first

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostOutcome:
        self.in_flight[url] += 1
        self.most_in_flight[url] = max(self.most_in_flight[url], self.in_flight[url])
        try:
            if url == SLOW:
                await self.gate.wait()
            if url == FAST and self.fail_first > 0:
                self.fail_first -= 1
                return PostOutcome(503, 1, "HTTP 503")
            return PostOutcome(200, 1)
        finally:
            self.in_flight[url] -= 1
            self.done.append((url, headers["webhook-id"]))


def context(transport: GatedTransport) -> handlers.Context:
    settings = WebhooksSettings(
        senders=4,
        per_subscription_in_flight=1,
        retry_schedule_s=[0.05, 0.05],
        retry_jitter=0.0,
        scan_interval_s=0.05,
    )
    resolver = FakeResolver(
        {"slow.example.go.tz": ["196.192.72.10"], "fast.example.go.tz": ["196.192.72.11"]}
    )
    return handlers.Context(
        store=FakeWebhooksStore(),
        settings=settings,
        transport=transport,
        resolver=resolver,
        mailer=FakeMailer(),
        clock=lambda: datetime.now(UTC),
    )


async def until(predicate) -> None:
    await wait_until(predicate, timeout=5, interval=0.01)


async def test_a_slow_receiver_does_not_hold_up_other_subscriptions() -> None:
    transport = GatedTransport()
    ctx = context(transport)
    dispatcher = Dispatcher(ctx)
    ctx.store.signal.listen(dispatcher.hint)
    await handlers.create_subscription(ctx, spec(url=SLOW), by="admin")
    await handlers.create_subscription(ctx, spec(url=FAST), by="admin")
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        for i in range(3):  # three registrations: both subscriptions want each
            other = registered().model_copy(update={"registration_id": f"reg-{i}"})
            await handlers.record_event(ctx, received(other, event_id=f"ce-{i}"))
        await until(lambda: sum(1 for url, _ in transport.done if url == FAST) == 3)
        assert transport.in_flight[SLOW] == 1, "the slow one holds one sender, not all"
        transport.gate.set()
        await until(lambda: len(transport.done) == 6)
        assert transport.most_in_flight[SLOW] == 1
    finally:
        stop.set()
        transport.gate.set()
        await asyncio.wait_for(task, 5)


async def test_a_retry_comes_back_on_its_timer_without_a_new_event() -> None:
    transport = GatedTransport(fail_first=2)
    ctx = context(transport)
    dispatcher = Dispatcher(ctx)
    ctx.store.signal.listen(dispatcher.hint)
    subscription, _ = await handlers.create_subscription(ctx, spec(url=FAST), by="admin")
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await handlers.record_event(ctx, received(event_id="ce-retry"))
        await until(lambda: len(transport.done) == 3)
        delivery = await handlers.get_delivery(ctx, subscription.id, "ce-retry")
        await until(lambda: ctx.store.deliveries[delivery.id].status == "delivered")
        assert [a.status_code for a in ctx.store.deliveries[delivery.id].attempts] == [
            503,
            503,
            200,
        ]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
