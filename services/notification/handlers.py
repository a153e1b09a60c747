"""Notification use cases: turn events into notifications, and deliver them.

Consuming an event only *records* what must be sent (idempotent inserts keyed on the
cause event, channel and recipient). Senders deliver from that log, so a slow or
failing channel never holds up consumption, and each retry waits its own backoff
without holding up other messages.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import ConnectionFailure, DuplicateKeyError

from services.notification import messages
from services.notification.channels import EmailSender, SmsSender  # noqa: F401 (re-exported)
from services.notification.domain import (
    DeliveryError,
    Intent,
    due_reminders,
    event_changes,
    intents_for,
    language_of,
    notification_key,
    parse_time,
    previous_details,
    resolution_intents,
    retry_delay,
    starts_in,
)
from services.notification.settings import NotificationSettings
from services.notification.store import NotificationStore
from shared.contracts.notification import NotificationFailed, NotificationSent
from shared.envelope import ReceivedEvent, wrap
from shared.logging import get_logger
from shared.metrics import Metrics
from shared.outbox import ConcurrentUpdate, mutate, new_document, save
from shared.timeutil import epoch, iso, now_iso, utcnow
from shared.tracing import SpanKind, current_traceparent, span
from shared.waiting import sleep_or_stop, wait_any

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
    wake_announcements: asyncio.Event = field(default_factory=asyncio.Event)
    # Events whose details and reminders this process has stored already: a burst of
    # confirmations for one event does not redo it for every participant.
    known_events: set[str] = field(default_factory=set)


def notification_document(
    intent: Intent,
    received: ReceivedEvent | None = None,
    *,
    key: str | None = None,
    cause_id: str | None = None,
    cause_type: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A new delivery-log entry for one intent (caused by an event, a reminder or an
    announcement), with the idempotency key as its ``_id``."""
    cause_event_id = cause_id or (received.id if received else "")
    return new_document(
        {
            "_id": key or intent.key(cause_event_id),
            "channel": intent.channel,
            "recipient": intent.recipient,
            "template": intent.template,
            "language": intent.language,
            "context": intent.context,
            "attachments": list(intent.attachments),
            "registration_id": intent.registration_id,
            "resolution_id": intent.resolution_id,
            "event_id": (intent.context.get("event") or {}).get("event_id"),
            "cause_event_id": cause_event_id,
            "cause_event_type": cause_type or (received.type if received else ""),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": 0.0,
            "lease_until": 0.0,
            "last_error": None,
            "errors": [],
            "created_at": now_iso(),
            "sent_at": None,
            # The send continues the trace of what caused it (request → outbox → consumer).
            "traceparent": current_traceparent(),
            **(extra or {}),
        }
    )


async def record_registration_event(ctx: Context, received: ReceivedEvent) -> None:
    """Keep the participant projection and record the messages this event calls for."""
    event = received.event
    fields: dict[str, Any] = {
        "event_id": event.event.event_id,
        "reference": event.reference,
        "status": event.status,
        "contact": event.participant.model_dump(mode="json"),
        "event": event.event.model_dump(mode="json"),
        "updated_at": now_iso(),
    }
    if getattr(event, "ticket", None):
        fields["ticket"] = event.ticket
    if getattr(event, "cadre", None):
        fields["cadre"] = event.cadre
    event_time = iso(received.time) if received.time else None
    if not await ctx.store.upsert_participant(event.registration_id, fields, event_time=event_time):
        # Erased (no messages for data we no longer hold), or older than what the
        # projection shows (a replay after a newer event): its news is out of date.
        log.info("registration_event_not_applied", ce_id=received.id, ce_type=received.type)
        return
    intents = intents_for(received, sms_enabled=ctx.sms is not None)
    added = await ctx.store.add([notification_document(i, received) for i in intents])
    if added:
        ctx.wake_senders.set()
    if event.status == "confirmed" and event.event.event_id not in ctx.known_events:
        await remember_event(ctx, event.event.model_dump(mode="json"), state=None)
        ctx.known_events.add(event.event.event_id)


async def erase_personal_data(ctx: Context, received: ReceivedEvent) -> None:
    """PersonalDataErased: drop this service's copy of the participant's data."""
    event = received.event
    await ctx.store.erase_participant(event.registration_id, event.event_id)
    log.info("personal_data_erased", registration_id=event.registration_id)


async def record_resolution_event(ctx: Context, received: ReceivedEvent) -> None:
    """Email a resolution's focal persons when its progress is recorded or it completes."""
    intents = resolution_intents(received)
    added = await ctx.store.add([notification_document(i, received) for i in intents])
    if added:
        ctx.wake_senders.set()


# --------------------------------------------------------------------------- reminders


# An event its participants are still going to: "closed" only closes registration.
TAKING_PLACE = ("published", "closed")


async def record_catalogue_event(ctx: Context, received: ReceivedEvent) -> None:
    """EventPublished / EventUpdated / EventCancelled: keep the event and its reminders;
    tell the participants when the dates or venue of an event taking place change."""
    event = received.event
    details = event.event.model_dump(mode="json")
    changes = event_changes(getattr(event, "changed_fields", []))
    if changes and event.state in TAKING_PLACE:
        # Before the event is stored: a crash in between redelivers this event, which
        # then records the same (idempotent) notifications.
        await tell_event_changed(ctx, received, details, changes)
    await remember_event(ctx, details, state=event.state)


# Who hears that an event moved: everyone who may still come.
EVENT_CHANGE_AUDIENCE = ("confirmed", "waitlisted", "pending_approval")


async def tell_event_changed(
    ctx: Context, received: ReceivedEvent, details: dict[str, Any], changes: list[str]
) -> int:
    """One ``event_changed`` message per participant and channel, keyed on the
    ``EventUpdated``; the confirmed get a calendar update (same UID, higher SEQUENCE)."""
    event_id = details["event_id"]
    known = await ctx.store.events.find_one({"_id": event_id}) or {}
    extra = {
        "changes": changes,
        "previous": previous_details(known.get("event"), details),
        # Later changes carry higher sequence numbers: calendars keep the newest.
        "ics_sequence": int((received.time or utcnow()).timestamp()),
    }
    participants = await ctx.store.active_participants(event_id, statuses=EVENT_CHANGE_AUDIENCE)
    docs = []
    for p in participants:
        p = {**p, "event": details}
        ics = ("ics",) if p.get("status") == "confirmed" else ()
        for intent in participant_intents(
            p, "event_changed", extra, sms=ctx.sms is not None, attachments=ics
        ):
            key = notification_key(received.id, p["_id"], intent.channel)
            docs.append(notification_document(intent, received, key=key))
    added = await ctx.store.add(docs)
    if added:
        ctx.wake_senders.set()
    log.info("event_change_told", event_id=event_id, changes=changes, notifications=added)
    return added


async def remember_event(ctx: Context, details: dict[str, Any], *, state: str | None) -> None:
    """Keep an event's details (and state, when known) and (re)schedule its reminders."""
    fields: dict[str, Any] = {"updated_at": now_iso()}
    on_insert: dict[str, Any] = {"rules": None}
    if state is not None:
        fields["state"] = state
        fields["event"] = details
    else:
        # From a registration: details only fill in an event we have not heard of yet.
        on_insert["event"] = details
        on_insert["state"] = "published"
    await ctx.store.events.update_one(
        {"_id": details["event_id"]}, {"$set": fields, "$setOnInsert": on_insert}, upsert=True
    )
    if state is None:
        # The document may exist with rules only (set before any event was seen).
        await ctx.store.events.update_one(
            {"_id": details["event_id"], "event": {"$exists": False}},
            {"$set": {"event": details, "state": "published"}},
        )
    await schedule_reminders(ctx, details["event_id"])


async def schedule_reminders(ctx: Context, event_id: str) -> int:
    """Create the event's missing reminders and cancel those no longer wanted.

    Idempotent: reminder ids are deterministic (event, offset, start time), so running it
    again, or from two instances at once, creates nothing twice.
    """
    doc = await ctx.store.events.find_one({"_id": event_id})
    if doc is None:
        return 0
    wanted: list[dict[str, Any]] = []
    if doc.get("event") and doc.get("state", "published") in TAKING_PLACE:
        starts = parse_time(doc["event"]["starts_at"]).timestamp()
        offsets = doc.get("rules")
        if offsets is None:
            offsets = ctx.settings.reminder_offsets_s
        wanted = due_reminders(event_id, starts, offsets, epoch())
    wanted_ids = [r["_id"] for r in wanted]
    await ctx.store.reminders.update_many(
        {"event_id": event_id, "status": "pending", "_id": {"$nin": wanted_ids}},
        {"$set": {"status": "cancelled", "cancelled_at": now_iso()}},
    )
    created = 0
    for reminder in wanted:
        try:
            await ctx.store.reminders.insert_one(
                {
                    **reminder,
                    "status": "pending",
                    "lease_until": 0.0,
                    "created_at": now_iso(),
                    "fired_at": None,
                    "notifications": 0,
                }
            )
            created += 1
        except DuplicateKeyError:
            pass
    return created


async def set_reminder_rules(ctx: Context, event_id: str, offsets_s: list[int] | None) -> dict:
    """Organisers: an event's own reminder offsets (None: back to the defaults)."""
    await ctx.store.events.update_one(
        {"_id": event_id},
        {"$set": {"rules": offsets_s, "updated_at": now_iso()}},
        upsert=True,
    )
    await schedule_reminders(ctx, event_id)
    return await reminder_rules_view(ctx, event_id)


async def reminder_rules_view(ctx: Context, event_id: str) -> dict[str, Any]:
    """An event's rules (own or default) and its reminders."""
    doc = await ctx.store.events.find_one({"_id": event_id}) or {}
    rules = doc.get("rules")
    reminders = await ctx.store.reminders.find(
        {"event_id": event_id}, sort=[("due_at", 1)]
    ).to_list()
    return {
        "event_id": event_id,
        "offsets_s": rules if rules is not None else list(ctx.settings.reminder_offsets_s),
        "source": "event" if rules is not None else "default",
        "event_known": bool(doc.get("event")),
        "reminders": [
            {
                "id": r["_id"],
                "offset_s": r["offset_s"],
                "due_at": iso(datetime.fromtimestamp(r["due_at"], UTC)),
                "status": r["status"],
                "notifications": r.get("notifications", 0),
            }
            for r in reminders
        ],
    }


def participant_intents(
    participant: dict[str, Any],
    template: str,
    extra: dict[str, Any],
    *,
    sms: bool,
    attachments: tuple[str, ...] | None = None,
) -> list[Intent]:
    """Intents for a projected participant (reminders and announcements)."""
    contact = participant["contact"]
    language = language_of(contact.get("language"))
    context = {
        "participant": contact,
        "reference": participant.get("reference"),
        "registration_id": participant["_id"],
        "status": participant.get("status"),
        "event": participant["event"],
        "ticket": participant.get("ticket"),
        "waitlist_position": None,
        **extra,
    }
    if attachments is None:
        attachments = ("qr",) if template == "reminder" and participant.get("ticket") else ()
    out = [
        Intent(
            "email",
            contact["email"],
            template,
            language,
            context,
            registration_id=participant["_id"],
            attachments=attachments,
        )
    ]
    if sms and contact.get("phone"):
        out.append(Intent("sms", contact["phone"], template, language, context, participant["_id"]))
    return out


async def fire_reminder(ctx: Context, reminder: dict[str, Any]) -> int:
    """One notification per confirmed participant, keyed (reminder, registration, channel),
    so a reminder retaken after a crash, or by another instance, sends nothing twice."""
    event_doc = await ctx.store.events.find_one({"_id": reminder["event_id"]}) or {}
    participants = []
    if event_doc.get("state", "published") in TAKING_PLACE:
        participants = await ctx.store.active_participants(reminder["event_id"])
    docs = []
    for p in participants:
        if event_doc.get("event"):
            p = {**p, "event": event_doc["event"]}  # the latest dates and venue
        extra = {"starts_in": starts_in(reminder["offset_s"]), "offset_s": reminder["offset_s"]}
        for intent in participant_intents(p, "reminder", extra, sms=ctx.sms is not None):
            key = notification_key(reminder["_id"], p["_id"], intent.channel)
            docs.append(
                notification_document(
                    intent, key=key, cause_id=reminder["_id"], cause_type="reminder"
                )
            )
    added = await ctx.store.add(docs)
    await ctx.store.reminders.update_one(
        {"_id": reminder["_id"]},
        {"$set": {"status": "done", "fired_at": now_iso(), "notifications": len(docs)}},
    )
    if added:
        ctx.wake_senders.set()
    log.info(
        "reminder_fired",
        event_id=reminder["event_id"],
        offset_s=reminder["offset_s"],
        notifications=len(docs),
        new=added,
    )
    return added


async def run_reminders(ctx: Context, stop: asyncio.Event) -> None:
    """Worker: fire due reminders, one claim at a time, until stopped."""
    while not stop.is_set():
        try:
            reminder = await ctx.store.claim_reminder(ctx.settings.reminder_lease_s)
            if reminder is not None:
                await fire_reminder(ctx, reminder)
                continue
        except Exception as exc:  # MongoDB down: the lease brings the reminder back
            log.warning("reminder_worker_error", error=type(exc).__name__)
        await sleep_or_stop(stop, ctx.settings.reminder_poll_s)


# --------------------------------------------------------------------------- announcements


async def create_announcement(ctx: Context, spec: dict[str, Any]) -> dict[str, Any]:
    """Snapshot the event's confirmed participants (optionally one cadre) as targets."""
    targets = await ctx.store.active_participants(spec["event_id"], cadre=spec.get("cadre"))
    doc = new_document(
        {
            "_id": str(uuid.uuid4()),
            **spec,
            "targets": [t["_id"] for t in targets],
            "total": len(targets) * len(spec["channels"]),
            "cursor": 0,
            "status": "fanning_out" if targets else "done",
            "lease_until": 0.0,
            "created_at": now_iso(),
            "completed_at": None if targets else now_iso(),
        }
    )
    await ctx.store.announcements.insert_one(doc)
    ctx.wake_announcements.set()
    return doc


async def fan_out(ctx: Context, doc: dict[str, Any], stop: asyncio.Event) -> None:
    """Turn an announcement into notifications in batches, at a bounded rate.

    Progress (``cursor``) is saved after each batch; keys are (announcement, registration,
    channel), so a fan-out retaken after a crash repeats no message.
    """
    batch = max(1, ctx.settings.announcement_batch)
    pause = batch / max(ctx.settings.announcement_rate_per_s, 0.001)
    cursor = int(doc.get("cursor", 0))
    targets: list[str] = doc["targets"]
    while cursor < len(targets) and not stop.is_set():
        ids = targets[cursor : cursor + batch]
        people = await ctx.store.active_participants(doc["event_id"], ids=ids)
        extra = {
            "announcement": {
                "subject_sw": doc["subject_sw"],
                "subject_en": doc["subject_en"],
                "body_sw": doc["body_sw"],
                "body_en": doc["body_en"],
            }
        }
        docs = []
        for p in people:
            for intent in participant_intents(p, "announcement", extra, sms=True):
                if intent.channel not in doc["channels"]:
                    continue
                if intent.channel == "sms" and ctx.sms is None:
                    continue
                key = notification_key(doc["_id"], p["_id"], intent.channel)
                docs.append(
                    notification_document(
                        intent,
                        key=key,
                        cause_id=doc["_id"],
                        cause_type="announcement",
                        extra={"announcement_id": doc["_id"]},
                    )
                )
        await ctx.store.add(docs)
        ctx.wake_senders.set()
        cursor += len(ids)
        done = cursor >= len(targets)
        await ctx.store.announcements.update_one(
            {"_id": doc["_id"]},
            {
                "$set": {
                    "cursor": cursor,
                    "lease_until": 0.0 if done else epoch() + ctx.settings.announcement_lease_s,
                    **({"status": "done", "completed_at": now_iso()} if done else {}),
                }
            },
        )
        if not done:
            await sleep_or_stop(stop, pause)


async def run_announcements(ctx: Context, stop: asyncio.Event) -> None:
    """Worker: fan out announcements, until stopped."""
    while not stop.is_set():
        try:
            doc = await ctx.store.claim_announcement(ctx.settings.announcement_lease_s)
            if doc is not None:
                await fan_out(ctx, doc, stop)
                continue
        except Exception as exc:  # MongoDB down: the lease brings the announcement back
            log.warning("announcement_worker_error", error=type(exc).__name__)
        ctx.wake_announcements.clear()
        await wait_any(stop, ctx.wake_announcements, ctx.settings.reminder_poll_s)


async def announcement_progress(ctx: Context, announcement_id: str) -> dict[str, Any] | None:
    """An announcement with its progress: total, queued, sent, failed, pending."""
    doc = await ctx.store.announcements.find_one({"_id": announcement_id})
    if doc is None:
        return None
    counts: dict[str, int] = {}
    cursor = ctx.store.notifications.find({"announcement_id": announcement_id}, {"status": 1})
    async for n in cursor:
        counts[n["status"]] = counts.get(n["status"], 0) + 1
    queued = sum(counts.values())
    sent = counts.get("sent", 0)
    failed = counts.get("failed", 0) + counts.get("cancelled", 0)
    total = int(doc["total"])
    return {
        "id": doc["_id"],
        "event_id": doc["event_id"],
        "cadre": doc.get("cadre"),
        "channels": doc["channels"],
        "status": "done" if doc["status"] == "done" and sent + failed >= queued else "sending",
        "fan_out": doc["status"],
        "total": total,
        "queued": queued,
        "sent": sent,
        "failed": failed,
        "pending": max(0, queued - sent - failed),
        "skipped": max(0, total - queued) if doc["status"] == "done" else 0,
        "created_at": doc["created_at"],
        "completed_at": doc.get("completed_at"),
    }


class RateLimiter:
    """A token bucket: at most ``rate`` per second, bursts up to one second's worth.

    ``clock`` and ``sleep`` are injectable so the rate is tested without waiting.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.rate = max(rate, 0.001)
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self.updated = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one message may be sent, then take its token."""
        async with self._lock:
            while True:
                now = self._clock()
                elapsed = max(0.0, now - self.updated)
                self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
                self.updated = now
                # The epsilon stops float rounding from sleeping ~1e-17 s in a loop.
                if self.tokens >= 1 - 1e-9:
                    self.tokens = max(0.0, self.tokens - 1)
                    return
                await self._sleep((1 - self.tokens) / self.rate)


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
                doc = await self.ctx.store.claim_next(self.ctx.settings.send_lease_s)
            except Exception as exc:  # MongoDB down: wait and retry
                log.warning("claim_failed", error=type(exc).__name__)
                await sleep_or_stop(stop, 1.0)
                continue
            if doc is None:
                self.ctx.wake_senders.clear()
                await wait_any(stop, self.ctx.wake_senders, poll)
                continue
            await self.deliver(doc)

    def _due_again(self, notification_id: str) -> None:
        self.ctx.store.hint(notification_id, "retry")
        self.ctx.wake_senders.set()

    async def deliver(self, doc: dict[str, Any]) -> None:
        """Send one claimed notification and record the outcome with its event, in a span
        that continues the trace of the event that caused it."""
        with span(
            f"{doc['channel']} send",
            traceparent=doc.get("traceparent"),
            kind=SpanKind.CLIENT,
            attributes={
                "mkutano.notification.id": doc["_id"],
                "mkutano.notification.template": doc["template"],
                "mkutano.notification.attempt": doc.get("attempts", 0),
            },
        ):
            await self._deliver(doc)

    async def _deliver(self, doc: dict[str, Any]) -> None:
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
        # Due again after the delay: queue it then, so no scan is needed to find it.
        asyncio.get_running_loop().call_later(delay, self._due_again, doc["_id"])
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
                    await save(
                        self.ctx.store.notifications,
                        doc,
                        changes,
                        messages_,
                        signal=self.ctx.store.signal,
                    )
                except ConcurrentUpdate:
                    await mutate(
                        self.ctx.store.notifications,
                        doc["_id"],
                        lambda _d: (changes, messages_),
                        signal=self.ctx.store.signal,
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

    written = await mutate(
        ctx.store.notifications, notification_id, decide, signal=ctx.store.signal
    )
    if written is not None:
        ctx.store.hint(notification_id, "pending")
        ctx.wake_senders.set()
    return written
