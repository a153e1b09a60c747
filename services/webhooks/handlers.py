"""Webhooks use cases: manage subscriptions, record deliveries, deliver them.

Consuming an event only *records* a delivery per matching subscription (keyed on the
subscription and the CloudEvent id, so a redelivered record adds nothing). Senders
deliver from that log (``workers.py``): a slow or failing receiver never holds up the
consumer, nor other subscriptions, and each retry waits its own backoff.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from services.webhooks.domain import (
    Delivery,
    DeliveryStatus,
    Subscription,
    TargetPolicy,
    check_patterns,
    delivery_id,
    literal_address,
    new_secret,
    parse_target,
)
from services.webhooks.ports import OwnerMailer, PostOutcome, Resolver, Transport, WebhooksStore
from services.webhooks.settings import WebhooksSettings
from shared.contracts import event_class, stream_events
from shared.envelope import ReceivedEvent
from shared.errors import DomainError
from shared.logging import get_logger
from shared.timeutil import utcnow

log = get_logger("webhooks")


@dataclass
class Context:
    store: WebhooksStore
    settings: WebhooksSettings
    transport: Transport
    resolver: Resolver
    mailer: OwnerMailer
    clock: Callable[[], datetime] = utcnow
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    rand: Callable[[], float] = random.random
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    # Told of every attempt: (outcome, latency in ms); the app counts them for /metrics.
    on_attempt: Callable[[str, int], None] = lambda outcome, latency_ms: None
    # The last consumption stamp given out: stamps only grow, so "older" is well defined.
    _last_stamp: float = 0.0

    def stamp(self) -> float:
        """A strictly increasing epoch time for a recorded delivery (order per key)."""
        self._last_stamp = max(self.clock().timestamp(), self._last_stamp + 1e-6)
        return self._last_stamp

    @property
    def policy(self) -> TargetPolicy:
        return TargetPolicy(
            tuple(self.settings.allowed_targets), only_allowed=self.settings.allowed_targets_only
        )

    def known_types(self) -> list[str]:
        """The event types of the streams this service delivers."""
        return [cls.ce_type() for topic in self.settings.topics for cls in stream_events(topic)]


@dataclass(frozen=True)
class SubscriptionSpec:
    url: str
    event_types: list[str]
    label: str
    owner_email: str
    # None: no personal data; else the purpose an admin grants it for (PDPA).
    personal_data_purpose: str | None = None


# --------------------------------------------------------------------------- targets


async def check_target(ctx: Context, url: str) -> None:
    """Refuse a target that is, or resolves to, an internal address not allowed.

    A literal address is judged without any lookup (nor connection); a name is resolved
    and every address it has is judged. Done at creation and again before each attempt
    (a name may resolve elsewhere later).
    """
    _, host, port = parse_target(url)
    literal = literal_address(host)
    if literal is not None:
        ctx.policy.check(host, [str(literal)])
        return
    if not ctx.policy.may_resolve(host):
        raise DomainError(
            "target_not_allowed",
            "This deployment delivers only to the targets on its allow-list.",
            field="url",
        )
    try:
        addresses = await ctx.resolver.resolve(host, port)
    except OSError as exc:
        raise DomainError("target_unresolvable", f"{host} does not resolve.", field="url") from exc
    ctx.policy.check(host, addresses)


# --------------------------------------------------------------------------- subscriptions


async def create_subscription(
    ctx: Context, spec: SubscriptionSpec, *, by: str
) -> tuple[Subscription, str]:
    """A new active subscription and its secret (shown this once)."""
    await check_target(ctx, spec.url)
    patterns = check_patterns(spec.event_types, ctx.known_types())
    secret = new_secret(ctx.random_bytes(24))
    subscription = Subscription.create(
        id=ctx.new_id(),
        url=spec.url,
        event_types=patterns,
        label=spec.label,
        owner_email=spec.owner_email,
        secret=secret,
        personal_data_purpose=spec.personal_data_purpose,
        by=by,
        now=ctx.clock(),
    )
    await ctx.store.insert_subscription(subscription)
    log.info(
        "subscription_created",
        subscription_id=subscription.id,
        personal_data=subscription.personal_data is not None,
    )
    return subscription, secret


async def get_subscription(ctx: Context, subscription_id: str) -> Subscription:
    subscription = await ctx.store.get_subscription(subscription_id)
    if subscription is None:
        raise DomainError("subscription_not_found", "No such subscription.")
    return subscription


async def list_subscriptions(ctx: Context) -> list[Subscription]:
    return await ctx.store.list_subscriptions()


async def _change(
    ctx: Context, subscription_id: str, change: Callable[[Subscription], object]
) -> Subscription:
    """Load, change, save (revision-checked), again if another writer came first."""
    for _ in range(20):
        subscription = await get_subscription(ctx, subscription_id)
        change(subscription)
        if await ctx.store.save_subscription(subscription):
            return subscription
    raise DomainError("concurrent_update", "The subscription is changing; try again.")


@dataclass(frozen=True)
class SubscriptionChange:
    url: str | None = None
    event_types: list[str] | None = None
    label: str | None = None
    owner_email: str | None = None


async def change_subscription(
    ctx: Context, subscription_id: str, change: SubscriptionChange
) -> Subscription:
    """Change a subscription's target, event types, label or owner (checked as at
    creation); what is recorded from now on follows the new settings."""
    if change.url is not None:
        await check_target(ctx, change.url)
    patterns = (
        check_patterns(change.event_types, ctx.known_types())
        if change.event_types is not None
        else None
    )
    return await _change(
        ctx,
        subscription_id,
        lambda s: s.change(
            now=ctx.clock(),
            url=change.url,
            event_types=patterns,
            label=change.label,
            owner_email=change.owner_email,
        ),
    )


async def grant_personal_data(
    ctx: Context, subscription_id: str, *, purpose: str, by: str
) -> Subscription:
    """Grant personal data for a purpose; events recorded from now on carry it."""
    subscription = await _change(
        ctx,
        subscription_id,
        lambda s: s.grant_personal_data(purpose=purpose, by=by, now=ctx.clock()),
    )
    log.info("personal_data_granted", subscription_id=subscription_id)
    return subscription


async def revoke_personal_data(ctx: Context, subscription_id: str) -> Subscription:
    """Revoke the grant; events recorded from now on go without personal fields."""
    subscription = await _change(
        ctx, subscription_id, lambda s: s.revoke_personal_data(now=ctx.clock())
    )
    log.info("personal_data_revoked", subscription_id=subscription_id)
    return subscription


async def pause_subscription(ctx: Context, subscription_id: str) -> Subscription:
    """Stop delivering; new events are still recorded and wait for the resume."""
    return await _change(
        ctx, subscription_id, lambda s: s.pause(reason="paused by an admin", now=ctx.clock())
    )


async def resume_subscription(ctx: Context, subscription_id: str) -> Subscription:
    """Deliver again, starting with what waited (in order per key)."""
    subscription = await _change(ctx, subscription_id, lambda s: s.resume(now=ctx.clock()))
    await ctx.store.release_held(subscription_id)
    return subscription


async def delete_subscription(ctx: Context, subscription_id: str) -> None:
    """The subscription and its delivery log go (their payloads may hold personal data)."""
    if not await ctx.store.delete_subscription(subscription_id):
        raise DomainError("subscription_not_found", "No such subscription.")


async def rotate_secret(
    ctx: Context, subscription_id: str, *, overlap_s: float | None = None
) -> tuple[Subscription, str, datetime | None]:
    """A new current secret (shown this once); the previous one stays valid for the
    overlap, during which every delivery carries both signatures."""
    secret = new_secret(ctx.random_bytes(24))
    overlap = ctx.settings.secret_overlap_s if overlap_s is None else overlap_s
    until: list[datetime | None] = [None]

    def rotate(s: Subscription) -> None:
        until[0] = s.rotate_secret(secret, overlap_s=overlap, now=ctx.clock())

    subscription = await _change(ctx, subscription_id, rotate)
    log.info("secret_rotated", subscription_id=subscription_id, overlap_s=overlap)
    return subscription, secret, until[0]


# --------------------------------------------------------------------------- delivery log


async def list_deliveries(
    ctx: Context,
    subscription_id: str,
    *,
    status: DeliveryStatus | None = None,
    limit: int = 100,
) -> list[Delivery]:
    await get_subscription(ctx, subscription_id)
    return await ctx.store.list_deliveries(subscription_id, status=status, limit=limit)


async def get_delivery(ctx: Context, subscription_id: str, event_id: str) -> Delivery:
    delivery = await ctx.store.get_delivery(delivery_id(subscription_id, event_id))
    if delivery is None:
        raise DomainError("delivery_not_found", "No such delivery for this subscription.")
    return delivery


async def replay_delivery(ctx: Context, subscription_id: str, event_id: str) -> Delivery:
    """Send one delivery again (same ``webhook-id``: a receiver that applied it skips it)."""
    await get_subscription(ctx, subscription_id)
    for _ in range(20):
        delivery = await get_delivery(ctx, subscription_id, event_id)
        if delivery.status == "sending":
            raise DomainError("delivery_in_flight", "The delivery is being sent right now.")
        delivery.replay(ctx.clock())
        if await ctx.store.save_delivery(delivery):
            return delivery
    raise DomainError("concurrent_update", "The delivery is changing; try again.")


ReplayScope = Literal["failed", "all"]


async def replay_range(
    ctx: Context,
    subscription_id: str,
    *,
    since: datetime,
    until: datetime | None = None,
    scope: ReplayScope = "failed",
) -> int:
    """Send again the deliveries recorded in a time range (the failed ones, or all that
    are not waiting already); how many."""
    if until is not None and until < since:
        raise DomainError("invalid_dates", "until is before since.", field="until")
    await get_subscription(ctx, subscription_id)
    count = 0
    limit = 10_000
    status: DeliveryStatus | None = "failed" if scope == "failed" else None
    found = await ctx.store.list_deliveries(
        subscription_id, status=status, since=since, until=until, limit=limit
    )
    # Oldest first: order per key holds for the replays too.
    for delivery in sorted(found, key=lambda d: d.recorded_at):
        if delivery.status not in ("delivered", "failed"):
            continue
        delivery.replay(ctx.clock())
        if await ctx.store.save_delivery(delivery):
            count += 1
        # else it changed meanwhile (being sent): leave it
    log.info("deliveries_replayed", subscription_id=subscription_id, count=count)
    return count


# --------------------------------------------------------------------------- consuming


def _deliveries_of(
    ctx: Context, subscriptions: list[Subscription], received: ReceivedEvent
) -> list[Delivery]:
    """One delivery per subscription whose patterns match the event, all with the same
    recorded time, later than any recorded before (the order per key)."""
    matching = [s for s in subscriptions if s.matches(received.type)]
    if not matching:
        return []
    data = received.event.model_dump(mode="json")
    now = ctx.stamp()
    return [
        Delivery.record(
            subscription,
            event_id=received.id,
            event_type=received.type,
            source=received.source,
            event_time=received.time,
            key=received.key or received.event.aggregate_id,
            data=data,
            event_cls=event_class(received.type),
            recorded_at=now,
        )
        for subscription in matching
    ]


async def record_event(ctx: Context, received: ReceivedEvent) -> int:
    """One delivery per subscription whose patterns match the event; how many are new.

    Paused subscriptions get theirs too: they wait for the resume.
    """
    added = 0
    for delivery in _deliveries_of(ctx, await ctx.store.list_subscriptions(), received):
        if await ctx.store.add_delivery(delivery):
            added += 1
    return added


async def record_events(ctx: Context, events: list[ReceivedEvent]) -> int:
    """``record_event`` for a batch of records: the subscriptions read once and every
    matching delivery inserted in one write (in the batch's order, each event its own
    recorded time, so per key the older event stays the older delivery); how many are
    new."""
    subscriptions = await ctx.store.list_subscriptions()
    if not subscriptions:
        return 0
    deliveries = [d for received in events for d in _deliveries_of(ctx, subscriptions, received)]
    return await ctx.store.add_deliveries(deliveries)


async def erase_personal_data(ctx: Context, received: ReceivedEvent) -> int:
    """``PersonalDataErased``: the participant's data leaves every stored payload here
    (what is still to be sent goes without it); how many deliveries held some.

    The erasure event itself is delivered like any other (it carries no personal data),
    so subscribers erase their copies too.
    """
    erased = 0
    for _ in range(5):
        again = False
        for delivery in await ctx.store.deliveries_of_key(received.event.registration_id):
            if delivery.status == "sending" and delivery.personal_data:
                again = True  # its sender's save must not be lost: after it
                continue
            if not delivery.erase_personal_data():
                continue
            if await ctx.store.save_delivery(delivery):
                erased += 1
            else:  # being sent right now: look again
                again = True
        if not again:
            break
        await asyncio.sleep(0.5)
    log.info("personal_data_erased", deliveries=erased)
    return erased


# --------------------------------------------------------------------------- delivering

DeliverOutcome = Literal[
    "delivered", "retrying", "failed", "held", "not_due", "superseded", "orphaned"
]


@dataclass(frozen=True)
class Attempted:
    """What ``deliver`` did, and when the delivery is due again (retrying or held)."""

    outcome: DeliverOutcome
    due_at: float | None = None


async def deliver(ctx: Context, delivery_id_: str) -> Attempted:
    """Take one delivery and make one attempt (if it may go now)."""
    s = ctx.settings
    now = ctx.clock()
    delivery = await ctx.store.claim_delivery(
        delivery_id_, lease_s=s.send_lease_s, now=now.timestamp()
    )
    if delivery is None:
        return Attempted("not_due")
    subscription = await ctx.store.get_subscription(delivery.subscription_id)
    if subscription is None:  # deleted while this was queued: its log went with it
        return Attempted("orphaned")
    if not subscription.active:
        return await _hold(ctx, delivery, now.timestamp() + s.paused_hold_s)
    older = await ctx.store.older_unfinished(delivery)
    if older is not None:
        # Released at once when the older one finishes (``release_held`` below); else
        # looked at again after the older one's next attempt (not before ``hold_s``).
        until = max(now.timestamp() + s.hold_s, older.next_attempt_at + s.hold_s)
        return await _hold(ctx, delivery, until)

    try:
        await check_target(ctx, subscription.url)
    except DomainError as exc:
        outcome = PostOutcome(None, 0, f"target refused: {exc.code}")
    else:
        body = delivery.body().encode()
        outcome = await ctx.transport.post(
            subscription.url, body, delivery.headers(subscription, now)
        )

    done = ctx.clock()
    if outcome.error is None:
        delivery.succeeded(
            status_code=outcome.status_code or 200,
            latency_ms=outcome.latency_ms,
            now=done,
            keep=s.attempts_kept,
        )
        result: DeliverOutcome = "delivered"
    else:
        gave_up = delivery.failed(
            error=outcome.error,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            now=done,
            schedule=s.retry_schedule_s,
            jitter=s.retry_jitter,
            rand=ctx.rand(),
            keep=s.attempts_kept,
        )
        result = "failed" if gave_up else "retrying"
    if not await ctx.store.save_delivery(delivery):
        # Our lease ran out and another sender took it: its attempt is the one on record.
        return Attempted("superseded")
    log.info(
        "delivery_attempted",
        subscription_id=subscription.id,
        event_id=delivery.event_id,
        outcome=result,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        attempt=delivery.attempts_count,
    )
    ctx.on_attempt(result, outcome.latency_ms)
    await _count_attempt(ctx, subscription.id, succeeded=result == "delivered")
    if delivery.finished:
        await ctx.store.release_held(subscription.id, key=delivery.key)
        return Attempted(result)
    return Attempted(result, delivery.next_attempt_at)


async def _hold(ctx: Context, delivery: Delivery, until: float) -> Attempted:
    delivery.hold(until)
    if not await ctx.store.save_delivery(delivery):
        return Attempted("superseded")
    return Attempted("held", until)


async def _count_attempt(ctx: Context, subscription_id: str, *, succeeded: bool) -> None:
    """Keep the subscription's run of failures; pause it (and tell its owner) at the bound."""
    paused: list[bool] = [False]

    def count(s: Subscription) -> None:
        if succeeded:
            s.record_success(ctx.clock())
        else:
            paused[0] = s.record_failure(
                ctx.clock(),
                pause_after=ctx.settings.pause_after_failures,
                failing_for_s=ctx.settings.pause_after_failing_s,
            )

    try:
        subscription = await _change(ctx, subscription_id, count)
    except DomainError:  # deleted meanwhile, or too busy to count this one
        return
    if paused[0]:
        log.warning(
            "subscription_paused",
            subscription_id=subscription_id,
            failures=subscription.consecutive_failures,
        )
        await notify_owner(ctx, subscription)


async def notify_owner(ctx: Context, subscription: Subscription) -> bool:
    """Email the owner that the subscription was paused; False if it could not go now
    (``notify_owners`` tries again)."""
    try:
        await ctx.mailer.subscription_paused(subscription)
    except Exception as exc:  # an SMTP outage: the flag stays, the worker retries
        log.warning(
            "owner_notice_failed", subscription_id=subscription.id, error=type(exc).__name__
        )
        return False
    try:
        await _change(ctx, subscription.id, lambda s: s.owner_notified(ctx.clock()))
    except DomainError:
        pass
    log.info("owner_notified", subscription_id=subscription.id)
    return True


async def notify_owners(ctx: Context) -> int:
    """Tell the owners of paused subscriptions not told yet; how many were told."""
    told = 0
    for subscription in await ctx.store.subscriptions_to_notify():
        if await notify_owner(ctx, subscription):
            told += 1
    return told
