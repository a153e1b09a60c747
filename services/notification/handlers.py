"""Notification use cases: turn events into notifications, and deliver them.

Consuming an event only *records* what must be sent (idempotent inserts keyed on the
cause event, channel and recipient). Senders (``dispatcher``) deliver from that log, so a
slow or failing channel never holds up consumption, and each retry waits its own backoff
without holding up other messages. Each use case is load → the aggregate decides → save,
through the ``ports.NotificationStore``; the loops that call them are in ``workers`` and
``dispatcher``.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import BrokenExecutor, Executor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from services.notification import messages
from services.notification.domain import (
    AUDIENCE_STATUSES,
    EVENT_CHANGE_AUDIENCE,
    TAKING_PLACE,
    Announcement,
    Audience,
    Candidate,
    DeliveryError,
    Intent,
    KnownEvent,
    Notification,
    Outcome,
    Reminder,
    RetryPolicy,
    event_changes,
    institution_sign_in_intents,
    intents_for,
    notification_key,
    participant_intents,
    payment_intents,
    previous_details,
    resolution_intents,
    starts_in,
)
from services.notification.ports import (
    EmailSender,
    NotificationStore,
    SmsSender,
    StoreUnavailable,
)
from services.notification.settings import NotificationSettings
from shared.envelope import ReceivedEvent
from shared.errors import DomainError
from shared.logging import get_logger
from shared.metrics import Metrics
from shared.timeutil import iso, utcnow
from shared.tracing import SpanKind, current_traceparent, span

log = get_logger("notification")


@dataclass
class Context:
    store: NotificationStore
    settings: NotificationSettings
    email: EmailSender
    sms: SmsSender | None
    metrics: Metrics
    clock: Callable[[], datetime] = utcnow
    # How the outcome's write waits between tries while the database is down.
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    # Events whose details and reminders this process has stored already: a burst of
    # confirmations for one event does not redo it for every participant.
    known_events: set[str] = field(default_factory=set)
    # Where emails are rendered (QR code, MIME, .ics: CPU-bound): worker processes, off
    # the event loop that consumes and sends; None renders them here.
    render_pool: Executor | None = None

    @property
    def retry_policy(self) -> RetryPolicy:
        s = self.settings
        return RetryPolicy(s.max_send_attempts, s.retry_base_s, s.retry_max_s)


def new_notification(
    intent: Intent,
    *,
    cause_id: str,
    cause_type: str,
    now: datetime,
    key: str | None = None,
    announcement_id: str | None = None,
) -> Notification:
    """A delivery-log entry for an intent; the send will continue the current trace
    (request → outbox → consumer → send)."""
    return Notification.from_intent(
        intent,
        cause_event_id=cause_id,
        cause_event_type=cause_type,
        now=now,
        key=key,
        announcement_id=announcement_id,
        traceparent=current_traceparent(),
    )


# --------------------------------------------------------------------------- consumed events


async def record_registration_event(ctx: Context, received: ReceivedEvent) -> None:
    """Keep the participant projection and record the messages this event calls for."""
    await record_registration_events(ctx, [received])


def _projection_of(
    received: ReceivedEvent, now: datetime
) -> tuple[str, dict[str, Any], str | None]:
    """What a registration event sets on the participant projection: (registration id,
    fields, event time)."""
    event = received.event
    fields: dict[str, Any] = {
        "event_id": event.event.event_id,
        "reference": event.reference,
        "status": event.status,
        "contact": event.participant.model_dump(mode="json"),
        "event": event.event.model_dump(mode="json"),
        "updated_at": iso(now),
    }
    if getattr(event, "ticket", None):
        fields["ticket"] = event.ticket
    if getattr(event, "cadre", None):
        fields["cadre"] = event.cadre
    if getattr(event, "category", None):
        fields["category"] = event.category
    if getattr(event, "institution_code", None):
        fields["institution_code"] = event.institution_code
    if getattr(event, "self_service_url", None):
        # The latest link: reminders, event changes and announcements carry it too.
        fields["self_service_url"] = event.self_service_url
    event_time = iso(received.time) if received.time else None
    return event.registration_id, fields, event_time


async def record_registration_events(ctx: Context, batch: list[ReceivedEvent]) -> None:
    """Registration events, in their order (the consumer's batch mode): the projection
    in one bulk write, the messages of all of them in one insert. Idempotent like one by
    one: replayed, each finds its projection and its notifications (keyed) in place."""
    now = ctx.clock()
    applied = await ctx.store.upsert_participants([_projection_of(r, now) for r in batch])
    notifications: list[Notification] = []
    for received, ok in zip(batch, applied, strict=True):
        if not ok:
            # Erased (no messages for data we no longer hold), or older than what the
            # projection shows (a replay after a newer event): its news is out of date.
            log.info("registration_event_not_applied", ce_id=received.id, ce_type=received.type)
            continue
        # Each message continues the trace of the event that caused it (one event
        # alone is in its consumer's span already).
        tracing = (
            span(
                f"consume {received.type}",
                traceparent=(received.headers or {}).get("traceparent"),
                kind=SpanKind.CONSUMER,
                attributes={"messaging.message.id": received.id},
            )
            if len(batch) > 1
            else nullcontext()
        )
        with tracing:
            intents = intents_for(received, sms_enabled=ctx.sms is not None)
            notifications.extend(
                new_notification(i, cause_id=received.id, cause_type=received.type, now=now)
                for i in intents
            )
    await ctx.store.add(notifications)
    for received, ok in zip(batch, applied, strict=True):
        event = received.event
        if ok and event.status == "confirmed" and event.event.event_id not in ctx.known_events:
            await remember_event(ctx, event.event.model_dump(mode="json"), state=None)
            ctx.known_events.add(event.event.event_id)


async def erase_personal_data(ctx: Context, received: ReceivedEvent) -> None:
    """PersonalDataErased: drop this service's copy of the participant's data."""
    event = received.event
    await ctx.store.erase_participant(event.registration_id, event.event_id, ctx.clock())
    log.info("personal_data_erased", registration_id=event.registration_id)


async def record_resolution_event(ctx: Context, received: ReceivedEvent) -> None:
    """Email a resolution's focal persons when its progress is recorded or it completes."""
    now = ctx.clock()
    await ctx.store.add(
        [
            new_notification(i, cause_id=received.id, cause_type=received.type, now=now)
            for i in resolution_intents(received)
        ]
    )


async def record_institution_sign_in(ctx: Context, received: ReceivedEvent) -> None:
    """Email an institution's contact person their sign-in link (idempotent on ce_id)."""
    now = ctx.clock()
    await ctx.store.add(
        [
            new_notification(i, cause_id=received.id, cause_type=received.type, now=now)
            for i in institution_sign_in_intents(received)
        ]
    )


async def erase_institution_contact(ctx: Context, received: ReceivedEvent) -> None:
    """InstitutionContactErased: drop the delivery log's copies of the contact person."""
    erased = await ctx.store.erase_recipient(received.event.email, ctx.clock())
    log.info("institution_contact_erased", contact_id=received.event.contact_id, messages=erased)


async def erase_focal_person(ctx: Context, received: ReceivedEvent) -> None:
    """FocalPersonErased: drop the delivery log's copies of the focal person."""
    erased = await ctx.store.erase_recipient(received.event.email, ctx.clock())
    log.info("focal_person_erased", person_key=received.event.person_key, messages=erased)


async def record_payment_notice(ctx: Context, received: ReceivedEvent) -> None:
    """A payer's notice (payments.notices.v1): the control number, a reminder, a receipt."""
    now = ctx.clock()
    await ctx.store.add(
        [
            new_notification(i, cause_id=received.id, cause_type=received.type, now=now)
            for i in payment_intents(received, sms_enabled=ctx.sms is not None)
        ]
    )


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


async def tell_event_changed(
    ctx: Context, received: ReceivedEvent, details: dict[str, Any], changes: list[str]
) -> int:
    """One ``event_changed`` message per participant and channel, keyed on the
    ``EventUpdated``; the confirmed get a calendar update (same UID, higher SEQUENCE)."""
    now = ctx.clock()
    event_id = details["event_id"]
    known = await ctx.store.get_event(event_id)
    extra = {
        "changes": changes,
        "previous": previous_details(known.details if known else None, details),
        # Later changes carry higher sequence numbers: calendars keep the newest.
        "ics_sequence": int((received.time or now).timestamp()),
    }
    participants = await ctx.store.active_participants(event_id, statuses=EVENT_CHANGE_AUDIENCE)
    notifications = []
    for p in participants:
        p = replace(p, event=details)
        ics = ("ics",) if p.status == "confirmed" else ()
        for intent in participant_intents(
            p, "event_changed", extra, sms=ctx.sms is not None, attachments=ics
        ):
            key = notification_key(received.id, p.registration_id, intent.channel)
            notifications.append(
                new_notification(
                    intent, cause_id=received.id, cause_type=received.type, now=now, key=key
                )
            )
    added = await ctx.store.add(notifications)
    log.info("event_change_told", event_id=event_id, changes=changes, notifications=added)
    return added


# --------------------------------------------------------------------------- reminders


async def remember_event(ctx: Context, details: dict[str, Any], *, state: str | None) -> None:
    """Keep an event's details (and state, when known) and (re)schedule its reminders."""
    await ctx.store.remember_event(details, state=state, now=ctx.clock())
    await schedule_reminders(ctx, details["event_id"])


async def schedule_reminders(ctx: Context, event_id: str) -> int:
    """Create the event's missing reminders and cancel those no longer wanted.

    Idempotent: reminder ids are deterministic (event, offset, start time), so running it
    again, or from two instances at once, creates nothing twice.
    """
    now = ctx.clock()
    known = await ctx.store.get_event(event_id)
    if known is None:
        return 0
    wanted = known.wanted_reminders(list(ctx.settings.reminder_offsets_s), now.timestamp())
    return await ctx.store.schedule_reminders(event_id, wanted, now)


async def set_reminder_rules(
    ctx: Context, event_id: str, offsets_s: list[int] | None
) -> dict[str, Any]:
    """Organisers: an event's own reminder offsets (None: back to the defaults)."""
    await ctx.store.set_reminder_rules(event_id, offsets_s, ctx.clock())
    await schedule_reminders(ctx, event_id)
    return await reminder_rules_view(ctx, event_id)


async def reminder_rules_view(ctx: Context, event_id: str) -> dict[str, Any]:
    """An event's rules (own or default) and its reminders."""
    known = await ctx.store.get_event(event_id) or KnownEvent(event_id)
    reminders = await ctx.store.reminders_of(event_id)
    return {
        "event_id": event_id,
        "offsets_s": known.rules
        if known.rules is not None
        else list(ctx.settings.reminder_offsets_s),
        "source": "event" if known.rules is not None else "default",
        "event_known": bool(known.details),
        "reminders": [
            {
                "id": r.id,
                "offset_s": r.offset_s,
                "due_at": iso(datetime.fromtimestamp(r.due_at, UTC)),
                "status": r.status,
                "notifications": r.notifications,
            }
            for r in reminders
        ],
    }


async def claim_reminder(ctx: Context) -> Reminder | None:
    """Take one due reminder (or one whose worker died), for ``fire_reminder``."""
    return await ctx.store.claim_reminder(lease_s=ctx.settings.reminder_lease_s, now=ctx.clock())


async def fire_reminder(ctx: Context, reminder: Reminder) -> int:
    """One notification per confirmed participant, keyed (reminder, registration, channel),
    so a reminder retaken after a crash, or by another instance, sends nothing twice."""
    now = ctx.clock()
    known = await ctx.store.get_event(reminder.event_id) or KnownEvent(reminder.event_id)
    participants = []
    if known.taking_place:
        participants = await ctx.store.active_participants(reminder.event_id)
    notifications = []
    extra = {"starts_in": starts_in(reminder.offset_s), "offset_s": reminder.offset_s}
    for p in participants:
        if known.details:
            p = replace(p, event=known.details)  # the latest dates and venue
        for intent in participant_intents(p, "reminder", extra, sms=ctx.sms is not None):
            key = notification_key(reminder.id, p.registration_id, intent.channel)
            notifications.append(
                new_notification(
                    intent, key=key, cause_id=reminder.id, cause_type="reminder", now=now
                )
            )
    added = await ctx.store.add(notifications)
    await ctx.store.reminder_fired(reminder.id, len(notifications), now)
    log.info(
        "reminder_fired",
        event_id=reminder.event_id,
        offset_s=reminder.offset_s,
        notifications=len(notifications),
        new=added,
    )
    return added


# --------------------------------------------------------------------------- announcements


def _audience_filters(audience: Audience) -> dict[str, Any]:
    return {
        "statuses": audience.statuses,
        "cadre": audience.cadre,
        "categories": audience.categories,
        "institution_codes": audience.institution_codes,
    }


async def announcement_audience(ctx: Context, spec: dict[str, Any]) -> dict[str, Any]:
    """How many people an announcement with this audience would reach now (the
    console's preview: "this goes to N people")."""
    audience = Audience.of(spec)
    count = await ctx.store.count_participants(spec["event_id"], **_audience_filters(audience))
    return {"event_id": spec["event_id"], **audience.as_dict(), "count": count}


async def create_announcement(ctx: Context, spec: dict[str, Any]) -> dict[str, Any]:
    """Snapshot the event's participants in the audience (confirmed by default; status,
    cadre, category, institution) as targets; returns the announcement's progress. The
    announcement worker fans it out."""
    if "sms" in spec["channels"] and ctx.sms is None:
        raise DomainError("sms_not_configured", "No SMS gateway is configured.", field="channels")
    audience = Audience.of(spec)
    targets = await ctx.store.active_participants(spec["event_id"], **_audience_filters(audience))
    announcement = Announcement.create(
        str(uuid.uuid4()), spec, [t.registration_id for t in targets], ctx.clock()
    )
    await ctx.store.add_announcement(announcement)
    return announcement.progress({})  # nothing queued yet


async def claim_announcement(ctx: Context) -> Announcement | None:
    """Take one announcement still fanning out (or one whose worker died)."""
    return await ctx.store.claim_announcement(
        lease_s=ctx.settings.announcement_lease_s, now=ctx.clock()
    )


async def fan_out_batch(ctx: Context, announcement: Announcement) -> Announcement:
    """The next batch of an announcement's targets as notifications; saves the progress.

    Keys are (announcement, registration, channel), so a fan-out retaken after a crash
    repeats no message.
    """
    now = ctx.clock()
    a = announcement
    ids = a.next_batch(ctx.settings.announcement_batch)
    # The targets are the snapshot; whoever has since cancelled or been erased is
    # skipped, whoever moved on to another status that may still come is not.
    people = await ctx.store.active_participants(a.event_id, ids=ids, statuses=AUDIENCE_STATUSES)
    extra = {"announcement": a.message()}
    notifications = []
    for p in people:
        for intent in participant_intents(p, "announcement", extra, sms=True):
            if intent.channel not in a.channels:
                continue
            if intent.channel == "sms" and ctx.sms is None:
                continue
            key = notification_key(a.id, p.registration_id, intent.channel)
            notifications.append(
                new_notification(
                    intent,
                    key=key,
                    cause_id=a.id,
                    cause_type="announcement",
                    announcement_id=a.id,
                    now=now,
                )
            )
    await ctx.store.add(notifications)
    advanced = a.advanced(len(ids), now, ctx.settings.announcement_lease_s)
    await ctx.store.save_announcement_progress(advanced)
    return advanced


async def announcement_progress(ctx: Context, announcement_id: str) -> dict[str, Any]:
    """An announcement with its progress: total, queued, sent, failed, pending."""
    announcement = await ctx.store.get_announcement(announcement_id)
    if announcement is None:
        raise DomainError("announcement_not_found", "No such announcement.")
    return announcement.progress(await ctx.store.statuses_of_announcement(announcement_id))


# --------------------------------------------------------------------------- the delivery log


async def list_notifications(
    ctx: Context, filters: dict[str, str | None], limit: int
) -> list[Notification]:
    """The delivery log, newest first, filtered on the given fields."""
    return await ctx.store.list_notifications({k: v for k, v in filters.items() if v}, limit)


async def resend(ctx: Context, notification_id: str) -> Notification:
    """Organisers: send a notification again (a new attempt cycle, same log entry)."""
    for _ in range(20):
        notification = await ctx.store.get(notification_id)
        if notification is None:
            raise DomainError("notification_not_found", "No such notification.")
        notification.resend()
        try:
            return await ctx.store.save(notification)
        except DomainError as exc:
            if exc.code != "concurrent_update":
                raise
    raise DomainError("concurrent_update", "The notification kept changing; try again.")


# --------------------------------------------------------------------------- sending


async def due_notifications(ctx: Context, limit: int) -> list[Candidate]:
    """What a scan finds to send now (the senders' safety net)."""
    return await ctx.store.due(limit, ctx.clock())


async def claim(ctx: Context, candidate: Candidate) -> Notification | None:
    """A sender takes a notification, if it is still as it was seen."""
    return await ctx.store.claim(candidate, lease_s=ctx.settings.send_lease_s, now=ctx.clock())


async def deliver(ctx: Context, notification: Notification) -> float | None:
    """Send one claimed notification through its channel and record the outcome (with its
    event). Returns the delay after which it is due again, if it is to be retried."""
    outcome = await attempt(ctx, notification)
    return await record_outcome(ctx, notification, outcome)


async def attempt(ctx: Context, n: Notification) -> Outcome:
    """One try on the notification's channel; every failure becomes an outcome.

    A message that cannot be built from what it holds (data stored before a rule, a
    template that cannot render it) fails at once, for good, with the reason: trying
    again would build the same message. The other messages go on."""
    if n.channel == "sms" and ctx.sms is None:
        return Outcome(sent=False, error="SMS gateway not configured", permanent=True)
    try:
        message = await _build_off_the_loop(ctx, n)
    except Exception as exc:
        reason = f"cannot build the {n.template} {n.channel}: {type(exc).__name__}: {exc}"
        return Outcome(sent=False, error=reason[:400], permanent=True)
    try:
        if isinstance(message, str):
            assert ctx.sms is not None
            await ctx.sms.send(n.recipient, message)
            return Outcome(sent=True, segments=messages.sms_segments(message))
        await ctx.email.send(message)
        return Outcome(sent=True)
    except DeliveryError as exc:
        return Outcome(sent=False, error=str(exc), permanent=exc.permanent)
    except Exception as exc:  # an answer we did not expect: record it, retry
        return Outcome(sent=False, error=f"{type(exc).__name__}: {str(exc)[:300]}")


def _build(ctx: Context, n: Notification) -> messages.EmailMessage | str:
    """The email (dated now) or the SMS text of a notification."""
    if n.channel == "sms":
        return messages.render_sms(n.template, n.language, n.context)
    return messages.build_email(**_email_arguments(ctx, n))


def _email_arguments(ctx: Context, n: Notification) -> dict[str, Any]:
    return {
        "notification_id": n.id,
        "sender": ctx.settings.smtp.sender,
        "recipient": n.recipient,
        "template": n.template,
        "language": n.language,
        "context": n.context,
        "attachments": n.attachments or [],
        "date": ctx.clock(),
    }


async def _build_off_the_loop(ctx: Context, n: Notification) -> messages.EmailMessage | str:
    """``_build`` in the render pool (an email), so that consuming and sending go on
    meanwhile; here if there is no pool, or the pool broke (a worker killed)."""
    if n.channel == "sms" or ctx.render_pool is None:
        return _build(ctx, n)
    arguments = _email_arguments(ctx, n)
    try:
        return await asyncio.get_running_loop().run_in_executor(
            ctx.render_pool, functools.partial(messages.build_email, **arguments)
        )
    except (BrokenExecutor, RuntimeError) as exc:  # broken, or shut down
        log.warning("render_pool_unavailable", error=type(exc).__name__)
        return messages.build_email(**arguments)


async def record_outcome(ctx: Context, n: Notification, outcome: Outcome) -> float | None:
    """Record an attempt's outcome; returns the retry's delay, if one is scheduled.

    The outcome must outlive a MongoDB outage: a "sent" forgotten here is sent again once
    the claim's lease expires. So it is retried until written (tests/faults)."""
    delay = n.record_outcome(outcome, ctx.clock(), ctx.retry_policy)
    status = n.status
    wait, failed_before = 0.1, False
    while True:
        try:
            if failed_before:  # the write before the failure may have landed
                current = await ctx.store.get(n.id)
                if current is not None and current.status == status:
                    break
            await _save_outcome(ctx, n)
            break
        except StoreUnavailable as exc:
            failed_before = True
            log.warning("outcome_not_recorded_yet", notification_id=n.id,
                        error=type(exc).__name__, retry_in_s=wait)  # fmt: skip
            await ctx.sleep(wait)
            wait = min(wait * 2, 2.0)
    _count(ctx, n, outcome, delay)
    return delay


async def _save_outcome(ctx: Context, n: Notification) -> None:
    for _ in range(20):
        try:
            await ctx.store.save(n)
            return
        except DomainError as exc:
            if exc.code != "concurrent_update":
                raise
        # Written meanwhile (the relay removing published events, an erasure): the same
        # outcome over the newer revision.
        current = await ctx.store.get(n.id)
        if current is None:
            return
        n.rebase(current)
    raise DomainError("concurrent_update", "The notification kept changing.")


def _count(ctx: Context, n: Notification, outcome: Outcome, delay: float | None) -> None:
    if n.status == "sent":
        ctx.metrics.notifications.labels(n.channel, "sent").inc()
        log.info(
            "notification_sent",
            notification_id=n.id,
            channel=n.channel,
            template=n.template,
            attempts=n.attempts,
        )
    elif n.status == "failed":
        ctx.metrics.notifications.labels(n.channel, "failed").inc()
        log.warning(
            "notification_failed",
            notification_id=n.id,
            channel=n.channel,
            attempts=n.attempts,
            permanent=outcome.permanent,
            error=outcome.error,
        )
    else:
        ctx.metrics.notifications.labels(n.channel, "retried").inc()
        log.info(
            "notification_retry",
            notification_id=n.id,
            channel=n.channel,
            attempts=n.attempts,
            retry_in_s=round(delay or 0.0, 2),
            error=outcome.error,
        )
