"""In-memory webhooks store, transport, resolver and mailer (the ports of
``services/webhooks/ports.py``), for the unit tests of the use cases."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime

from services.webhooks.domain import Delivery, DeliveryStatus, Subscription
from services.webhooks.ports import DELIVERIES, PostOutcome
from shared.envelope import OutboxMessage
from shared.outbox import WriteSignal

UNFINISHED = ("pending", "sending")


class FakeWebhooksStore:
    """Dicts of aggregates with the same revision checks and uniqueness as MongoDB."""

    def __init__(self, signal: WriteSignal | None = None) -> None:
        self.signal = signal or WriteSignal()
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: dict[str, Delivery] = {}
        self.leases: dict[str, float] = {}
        # The webhooks service publishes nothing; kept for the fakes' common shape.
        self.outbox: list[OutboxMessage] = []
        self.reported: list[str] = []
        self.bulk_writes = 0
        self.signal.listen(lambda _c, doc_id: self.reported.append(doc_id))

    # -- subscriptions

    async def insert_subscription(self, subscription: Subscription) -> None:
        assert subscription.id not in self.subscriptions
        subscription.rev = 1
        self.subscriptions[subscription.id] = copy.deepcopy(subscription)

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        found = self.subscriptions.get(subscription_id)
        return copy.deepcopy(found) if found else None

    async def list_subscriptions(self) -> list[Subscription]:
        return [
            copy.deepcopy(s)
            for s in sorted(self.subscriptions.values(), key=lambda s: s.created_at)
        ]

    async def save_subscription(self, subscription: Subscription) -> bool:
        current = self.subscriptions.get(subscription.id)
        if current is None or current.rev != subscription.rev:
            return False
        subscription.rev += 1
        self.subscriptions[subscription.id] = copy.deepcopy(subscription)
        return True

    async def delete_subscription(self, subscription_id: str) -> bool:
        existed = self.subscriptions.pop(subscription_id, None) is not None
        for key in [k for k, d in self.deliveries.items() if d.subscription_id == subscription_id]:
            del self.deliveries[key]
        return existed

    async def subscriptions_to_notify(self) -> list[Subscription]:
        return [copy.deepcopy(s) for s in self.subscriptions.values() if s.owner_notice_pending]

    # -- deliveries

    async def add_delivery(self, delivery: Delivery) -> bool:
        if delivery.id in self.deliveries:
            return False
        delivery.rev = 1
        self.deliveries[delivery.id] = copy.deepcopy(delivery)
        self.signal.written(DELIVERIES, delivery.id)
        return True

    async def add_deliveries(self, deliveries: list[Delivery]) -> int:
        self.bulk_writes += 1
        return sum([await self.add_delivery(d) for d in deliveries])

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        found = self.deliveries.get(delivery_id)
        return copy.deepcopy(found) if found else None

    async def save_delivery(self, delivery: Delivery) -> bool:
        current = self.deliveries.get(delivery.id)
        if current is None or current.rev != delivery.rev:
            return False
        delivery.rev += 1
        self.deliveries[delivery.id] = copy.deepcopy(delivery)
        self.leases.pop(delivery.id, None)
        if delivery.status == "pending" and not delivery.held:
            self.signal.written(DELIVERIES, delivery.id)
        return True

    async def claim_delivery(
        self, delivery_id: str, *, lease_s: float, now: float
    ) -> Delivery | None:
        d = self.deliveries.get(delivery_id)
        if d is None:
            return None
        due = d.status == "pending" and d.next_attempt_at <= now
        abandoned = d.status == "sending" and self.leases.get(delivery_id, 0.0) < now
        if not (due or abandoned):
            return None
        d.status = "sending"
        d.rev += 1
        self.leases[delivery_id] = now + lease_s
        return copy.deepcopy(d)

    async def due_deliveries(self, *, now: float, limit: int) -> list[str]:
        ready = [
            d
            for d in self.deliveries.values()
            if (d.status == "pending" and d.next_attempt_at <= now)
            or (d.status == "sending" and self.leases.get(d.id, 0.0) < now)
        ]
        ready.sort(key=lambda d: d.next_attempt_at)
        return [d.id for d in ready[:limit]]

    def _unfinished_of_key(self, subscription_id: str, key: str) -> list[Delivery]:
        found = [
            d
            for d in self.deliveries.values()
            if d.subscription_id == subscription_id and d.key == key and d.status in UNFINISHED
        ]
        return sorted(found, key=lambda d: d.recorded_at)

    async def older_unfinished(self, delivery: Delivery) -> Delivery | None:
        for d in self._unfinished_of_key(delivery.subscription_id, delivery.key):
            if d.id != delivery.id and d.recorded_at < delivery.recorded_at:
                return copy.deepcopy(d)
        return None

    async def release_held(self, subscription_id: str, *, key: str | None = None) -> list[str]:
        if key is not None:
            found = [d for d in self._unfinished_of_key(subscription_id, key)[:1] if d.held]
        else:
            found = sorted(
                (
                    d
                    for d in self.deliveries.values()
                    if d.subscription_id == subscription_id and d.status == "pending" and d.held
                ),
                key=lambda d: d.recorded_at,
            )
        for d in found:
            d.next_attempt_at = 0.0
            d.held = False
            d.rev += 1
            self.signal.written(DELIVERIES, d.id)
        return [d.id for d in found]

    async def deliveries_of_key(self, key: str) -> list[Delivery]:
        return [copy.deepcopy(d) for d in self.deliveries.values() if d.key == key]

    async def list_deliveries(
        self,
        subscription_id: str,
        *,
        status: DeliveryStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        found = [
            d
            for d in self.deliveries.values()
            if d.subscription_id == subscription_id
            and (status is None or d.status == status)
            and (since is None or d.recorded_at >= since.timestamp())
            and (until is None or d.recorded_at <= until.timestamp())
        ]
        found.sort(key=lambda d: d.recorded_at, reverse=True)
        return [copy.deepcopy(d) for d in found[:limit]]


@dataclass
class Post:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeTransport:
    """Answers with the queued outcomes (then ``default``); keeps every request."""

    outcomes: list[PostOutcome] = field(default_factory=list)
    default: PostOutcome = field(default_factory=lambda: PostOutcome(200, 5))
    posts: list[Post] = field(default_factory=list)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostOutcome:
        self.posts.append(Post(url, body, dict(headers)))
        return self.outcomes.pop(0) if self.outcomes else self.default


@dataclass
class FakeResolver:
    """Resolves from a table; every lookup is kept (a literal address must need none)."""

    table: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"{host}: name not known")
        return list(self.table[host])


@dataclass
class FakeMailer:
    sent: list[Subscription] = field(default_factory=list)
    fail: bool = False

    async def subscription_paused(self, subscription: Subscription) -> None:
        if self.fail:
            raise OSError("SMTP relay down")
        self.sent.append(copy.deepcopy(subscription))
