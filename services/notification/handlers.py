"""Notification use cases: turn events into notifications, and deliver them.

Consuming an event only *records* what must be sent (idempotent inserts keyed on the
cause event, channel and recipient). Senders deliver from that log, so a slow or
failing channel never holds up consumption, and each retry waits its own backoff
without holding up other messages.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import ConnectionFailure

from services.notification import messages
from services.notification.channels import EmailSender, SmsSender  # noqa: F401 (re-exported)
from services.notification.domain import DeliveryError, Intent, intents_for, retry_delay
from services.notification.settings import NotificationSettings
from services.notification.store import NotificationStore
from shared.contracts.notification import NotificationFailed, NotificationSent
from shared.envelope import ReceivedEvent, wrap
from shared.logging import get_logger
from shared.metrics import Metrics
from shared.outbox import ConcurrentUpdate, mutate, new_document, save
from shared.timeutil import epoch, now_iso, utcnow

SERVICE = "notification"
log = get_logger("notification")


@dataclass
class Context:
    store: NotificationStore
    settings: NotificationSettings
    email: EmailSender
    sms: SmsSender | None
    metrics: Metrics
    wake_relay: Any = lambda: None
    wake_senders: asyncio.Event = field(default_factory=asyncio.Event)


def notification_document(intent: Intent, received: ReceivedEvent) -> dict[str, Any]:
    return new_document(
        {
            "_id": intent.key(received.id),
            "channel": intent.channel,
            "recipient": intent.recipient,
            "template": intent.template,
            "language": intent.language,
            "context": intent.context,
            "attachments": list(intent.attachments),
            "registration_id": intent.registration_id,
            "resolution_id": intent.resolution_id,
            "cause_event_id": received.id,
            "cause_event_type": received.type,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": 0.0,
            "lease_until": 0.0,
            "last_error": None,
            "errors": [],
            "created_at": now_iso(),
            "sent_at": None,
        }
    )


async def record_registration_event(ctx: Context, received: ReceivedEvent) -> None:
    """Keep the participant projection and record the messages this event calls for."""
    event = received.event
    await ctx.store.upsert_participant(
        event.registration_id,
        {
            "event_id": event.event.event_id,
            "reference": event.reference,
            "status": event.status,
            "contact": event.participant.model_dump(mode="json"),
            "event": event.event.model_dump(mode="json"),
            "updated_at": now_iso(),
        },
    )
    intents = intents_for(received, sms_enabled=ctx.sms is not None)
    added = await ctx.store.add([notification_document(i, received) for i in intents])
    if added:
        ctx.wake_senders.set()


class RateLimiter:
    """A token bucket: at most ``rate`` per second, bursts up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


class Dispatcher:
    """Senders that claim due notifications and deliver them."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.limits = {
            "email": RateLimiter(ctx.settings.smtp.rate_per_s),
            "sms": RateLimiter(ctx.settings.sms.rate_per_s),
        }

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._sender(stop) for _ in range(self.ctx.settings.senders)))

    async def _sender(self, stop: asyncio.Event) -> None:
        poll = self.ctx.settings.dispatcher_poll_s
        while not stop.is_set():
            try:
                doc = await self.ctx.store.claim_due(self.ctx.settings.send_lease_s)
            except Exception as exc:  # MongoDB down: wait and retry
                log.warning("claim_failed", error=type(exc).__name__)
                await _sleep_or_stop(stop, 1.0)
                continue
            if doc is None:
                self.ctx.wake_senders.clear()
                await _wait_any(stop, self.ctx.wake_senders, poll)
                continue
            await self.deliver(doc)

    async def deliver(self, doc: dict[str, Any]) -> None:
        """Send one claimed notification and record the outcome with its event."""
        ctx = self.ctx
        channel = doc["channel"]
        segments: int | None = None
        await self.limits[channel].acquire()
        try:
            if channel == "email":
                message = messages.build_email(
                    notification_id=doc["_id"],
                    sender=ctx.settings.smtp.sender,
                    recipient=doc["recipient"],
                    template=doc["template"],
                    language=doc["language"],
                    context=doc["context"],
                    attachments=doc.get("attachments") or [],
                )
                await ctx.email.send(message)
            else:
                if ctx.sms is None:
                    raise DeliveryError("SMS gateway not configured", permanent=True)
                text = messages.render_sms(doc["template"], doc["language"], doc["context"])
                segments = messages.sms_segments(text)
                await ctx.sms.send(doc["recipient"], text)
        except DeliveryError as exc:
            await self._failed(doc, str(exc), permanent=exc.permanent)
            return
        except Exception as exc:  # a template or an answer we did not expect: record it
            await self._failed(doc, f"{type(exc).__name__}: {str(exc)[:300]}", permanent=False)
            return
        await self._sent(doc, segments)

    async def _sent(self, doc: dict[str, Any], segments: int | None) -> None:
        ctx = self.ctx
        event = NotificationSent(
            notification_id=doc["_id"],
            channel=doc["channel"],
            template=doc["template"],
            cause_event_id=doc["cause_event_id"],
            cause_event_type=doc["cause_event_type"],
            registration_id=doc.get("registration_id"),
            resolution_id=doc.get("resolution_id"),
            attempts=doc["attempts"],
            sent_at=utcnow(),
            segments=segments,
        )
        changes = {"status": "sent", "sent_at": now_iso(), "lease_until": 0.0, "segments": segments}
        await self._record(doc, changes, event)
        ctx.metrics.notifications.labels(doc["channel"], "sent").inc()
        log.info(
            "notification_sent",
            notification_id=doc["_id"],
            channel=doc["channel"],
            template=doc["template"],
            attempts=doc["attempts"],
        )

    async def _failed(self, doc: dict[str, Any], error: str, *, permanent: bool) -> None:
        ctx = self.ctx
        attempts = doc["attempts"]
        errors = (doc.get("errors") or [])[-9:] + [{"at": now_iso(), "error": error}]
        if permanent or attempts >= ctx.settings.max_send_attempts:
            event = NotificationFailed(
                notification_id=doc["_id"],
                channel=doc["channel"],
                template=doc["template"],
                cause_event_id=doc["cause_event_id"],
                cause_event_type=doc["cause_event_type"],
                registration_id=doc.get("registration_id"),
                resolution_id=doc.get("resolution_id"),
                attempts=attempts,
                failed_at=utcnow(),
                error=error,
                permanent=permanent,
            )
            changes = {
                "status": "failed",
                "last_error": error,
                "errors": errors,
                "lease_until": 0.0,
            }
            await self._record(doc, changes, event)
            ctx.metrics.notifications.labels(doc["channel"], "failed").inc()
            log.warning(
                "notification_failed",
                notification_id=doc["_id"],
                channel=doc["channel"],
                attempts=attempts,
                permanent=permanent,
                error=error,
            )
            return
        delay = retry_delay(attempts, ctx.settings.retry_base_s, ctx.settings.retry_max_s)
        changes = {
            "status": "retry",
            "next_attempt_at": epoch() + delay,
            "last_error": error,
            "errors": errors,
            "lease_until": 0.0,
        }
        await self._record(doc, changes, None)
        ctx.metrics.notifications.labels(doc["channel"], "retried").inc()
        log.info(
            "notification_retry",
            notification_id=doc["_id"],
            channel=doc["channel"],
            attempts=attempts,
            retry_in_s=round(delay, 2),
            error=error,
        )

    async def _record(self, doc: dict[str, Any], changes: dict[str, Any], event: Any) -> None:
        messages_ = [wrap(event, SERVICE)] if event is not None else []
        # The outcome must outlive a MongoDB outage: a "sent" forgotten here is sent again
        # once the claim's lease expires. So retry until it is written (tests/faults).
        delay, failed_before = 0.1, False
        while True:
            try:
                if failed_before:  # the write before the failure may have landed
                    current = await self.ctx.store.get(doc["_id"])
                    if current is not None and current.get("status") == changes.get("status"):
                        break
                try:
                    await save(self.ctx.store.notifications, doc, changes, messages_)
                except ConcurrentUpdate:
                    await mutate(
                        self.ctx.store.notifications, doc["_id"], lambda _d: (changes, messages_)
                    )
                break
            except ConnectionFailure as exc:
                failed_before = True
                log.warning("outcome_not_recorded_yet", notification_id=doc["_id"],
                            error=type(exc).__name__, retry_in_s=delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        if messages_:
            self.ctx.wake_relay()


async def resend(ctx: Context, notification_id: str) -> dict[str, Any] | None:
    """Organisers: send a notification again (a new attempt cycle, same log entry)."""

    def decide(doc: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        return {
            "status": "pending",
            "next_attempt_at": 0.0,
            "lease_until": 0.0,
            "attempts": 0,
            "resend_count": int(doc.get("resend_count", 0)) + 1,
        }, []

    written = await mutate(ctx.store.notifications, notification_id, decide)
    if written is not None:
        ctx.wake_senders.set()
    return written


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    tasks = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
