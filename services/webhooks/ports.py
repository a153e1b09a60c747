"""What the webhooks use cases need from the outside: the store, DNS, HTTP and email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.webhooks.domain import Delivery, DeliveryStatus, Subscription

# The store reports to the service's write signal, for each delivery due now:
# ``signal.written(DELIVERIES, delivery_id)`` (the senders listen).
DELIVERIES = "deliveries"


class WebhooksStore(Protocol):
    """The service's database (``store.WebhooksStore``; ``tests/unit/fakes/webhooks.py``).

    Writes of an aggregate are revision-checked: ``save_*`` returns False (and writes
    nothing) if the document moved on since it was read; read it again.
    """

    # subscriptions
    async def insert_subscription(self, subscription: Subscription) -> None: ...
    async def get_subscription(self, subscription_id: str) -> Subscription | None: ...
    async def list_subscriptions(self) -> list[Subscription]: ...
    async def save_subscription(self, subscription: Subscription) -> bool: ...
    async def delete_subscription(self, subscription_id: str) -> bool:
        """Remove it and its delivery log; False if there was none."""
        ...

    async def subscriptions_to_notify(self) -> list[Subscription]:
        """Paused subscriptions whose owner has not been told yet."""
        ...

    # deliveries
    async def add_delivery(self, delivery: Delivery) -> bool:
        """Insert it (and report it to the senders); False if it exists already."""
        ...

    async def add_deliveries(self, deliveries: list[Delivery]) -> int:
        """Insert them in one write (and report each new one to the senders); those that
        exist already are left as they are. How many were new."""
        ...

    async def get_delivery(self, delivery_id: str) -> Delivery | None: ...
    async def save_delivery(self, delivery: Delivery) -> bool: ...
    async def claim_delivery(
        self, delivery_id: str, *, lease_s: float, now: float
    ) -> Delivery | None:
        """Take a delivery to send: due (pending, ``next_attempt_at`` passed) or left by a
        sender whose lease expired; None if it is not (any more)."""
        ...

    async def due_deliveries(self, *, now: float, limit: int) -> list[str]:
        """Ids of deliveries to take now, most overdue first (the safety-net scan)."""
        ...

    async def older_unfinished(self, delivery: Delivery) -> Delivery | None:
        """The oldest delivery of the same subscription and key, recorded before this one,
        not delivered or failed yet: order per key says it goes first."""
        ...

    async def release_held(self, subscription_id: str, *, key: str | None = None) -> list[str]:
        """Make the held deliveries of a subscription (of one key) due now; their ids."""
        ...

    async def deliveries_of_key(self, key: str) -> list[Delivery]:
        """Every subscription's deliveries about one aggregate (for an erasure)."""
        ...

    async def list_deliveries(
        self,
        subscription_id: str,
        *,
        status: DeliveryStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """A subscription's deliveries, newest first (``since``/``until`` on when they
        were recorded)."""
        ...


@dataclass(frozen=True)
class PostOutcome:
    """What one POST gave: a status (None without an answer), how long it took, and an
    error in our own words (None for a 2xx) — never the receiver's body."""

    status_code: int | None
    latency_ms: int
    error: str | None = None


class Transport(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostOutcome: ...


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[str]:
        """The IP addresses ``host`` resolves to (literal addresses: themselves)."""
        ...


class OwnerMailer(Protocol):
    async def subscription_paused(self, subscription: Subscription) -> None:
        """Tell the owner their subscription was paused (raises if it could not)."""
        ...
