"""Notification domain: which messages an event calls for, the notification aggregate
(claimed, sent, failed and retried, resent), reminder schedules, announcements.

Pure: no I/O, no clock of its own (methods take ``now``). Handlers turn consumed events
into ``Intent`` objects here, make ``Notification`` aggregates of them and save those.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, NamedTuple

from shared.aggregate import Aggregate
from shared.contracts.notification import NotificationFailed, NotificationSent
from shared.contracts.payments_notices import (
    ControlNumberNotice,
    PaymentReceiptNotice,
    PaymentReminderNotice,
)
from shared.contracts.registration import (
    ConfirmationResendRequested,
    ParticipantCheckedIn,
    ParticipantRegistered,
    ParticipantWaitlisted,
    RegistrationApproved,
    RegistrationCancelled,
    RegistrationRejected,
    RegistrationUpdated,
    WaitlistPromoted,
)
from shared.contracts.registration_notices import (
    CertificateIssuedNotice,
    ConfirmationResendRequestedNotice,
    EvaluationInvitedNotice,
    ParticipantCheckedInNotice,
    ParticipantRegisteredNotice,
    ParticipantWaitlistedNotice,
    RegistrationApprovedNotice,
    RegistrationCancelledNotice,
    RegistrationPaidNotice,
    RegistrationRejectedNotice,
    RegistrationUpdatedNotice,
    WaitlistPromotedNotice,
)
from shared.contracts.resolutions import ResolutionCompleted, ResolutionUpdated
from shared.contracts.resolutions_notices import (
    CoordinatorDigestNotice,
    ResolutionCompletedNotice,
    ResolutionReminderNotice,
    ResolutionUpdatedNotice,
)
from shared.envelope import ReceivedEvent
from shared.errors import DomainError
from shared.timeutil import iso

Channel = Literal["email", "sms"]
LANGUAGES = ("sw", "en")
# ParticipantRegistered by status; a waitlisted registration is told by ParticipantWaitlisted.
TEMPLATE_FOR_STATUS = {
    "confirmed": "confirmation",
    "pending_approval": "pending_approval",
}
# One template per registration notice (ParticipantRegistered depends on its status):
# the notices of registration.notices.v1, and the retired version-1 events of
# registration.v1 that may still be on the topic from before the notices existed.
REGISTERED_EVENTS = (ParticipantRegisteredNotice, ParticipantRegistered)
TEMPLATE_FOR_EVENT: dict[type, str] = {
    ParticipantWaitlistedNotice: "waitlisted",
    WaitlistPromotedNotice: "promoted",
    RegistrationApprovedNotice: "approved",
    RegistrationRejectedNotice: "rejected",
    RegistrationUpdatedNotice: "updated",
    RegistrationCancelledNotice: "cancelled",
    ParticipantCheckedInNotice: "checked_in",
    ConfirmationResendRequestedNotice: "resend",
    ParticipantWaitlisted: "waitlisted",
    WaitlistPromoted: "promoted",
    RegistrationApproved: "approved",
    RegistrationRejected: "rejected",
    RegistrationUpdated: "updated",
    RegistrationCancelled: "cancelled",
    ParticipantCheckedIn: "checked_in",
    ConfirmationResendRequested: "resend",
}
# The notices of resolutions.notices.v1, and the retired version-1 events of resolutions.v1
# that may still be on the topic from before the notices existed (the public version-2
# events carry no focal person's contact: nothing to act on).
TEMPLATE_FOR_RESOLUTION_EVENT: dict[type, str] = {
    ResolutionUpdatedNotice: "resolution_updated",
    ResolutionCompletedNotice: "resolution_completed",
    ResolutionReminderNotice: "resolution_reminder",
    ResolutionUpdated: "resolution_updated",
    ResolutionCompleted: "resolution_completed",
}
# Check-in is recorded for every day of a conference; thank the participant once.
ONCE_PER_REGISTRATION = {"checked_in"}
# Certificates and evaluation (issue 16): the certificate's email (with its download
# link; the PDF is not attached: it stays behind the participant's own link) and the
# evaluation invitation (email and SMS, once per registration).
TEMPLATE_FOR_EVENT.update(
    {CertificateIssuedNotice: "certificate", EvaluationInvitedNotice: "evaluation_invitation"}
)
ONCE_PER_REGISTRATION.add("evaluation_invitation")
AFTER_EVENT_FIELDS = (
    "certificate_url",
    "verify_url",
    "days",
    "cpd_hours",
    "evaluation_url",
    "certificate_waits",
)
# Statuses that receive reminders and announcements.
ACTIVE_STATUSES = ("confirmed",)


def language_of(value: str | None) -> str:
    """A supported language, Swahili by default (the platform's first language)."""
    return value if value in LANGUAGES else "sw"


def notification_key(*parts: str) -> str:
    """A deterministic notification id from the parts that make one intent unique."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Intent:
    """One message to one recipient on one channel, caused by one event."""

    channel: Channel
    recipient: str
    template: str
    language: str
    context: dict[str, Any]
    registration_id: str | None = None
    resolution_id: str | None = None
    attachments: tuple[str, ...] = field(default_factory=tuple)
    # When set, replaces the cause event id in the key (e.g. one thank-you per registration).
    dedupe_on: str | None = None

    def key(self, cause_event_id: str) -> str:
        """One notification per (event id, channel, recipient): the idempotency key."""
        return notification_key(
            self.dedupe_on or cause_event_id, self.channel, self.recipient.lower()
        )


def registration_context(event: Any) -> dict[str, Any]:
    """What a registration template needs; copied so the message renders without calling back."""
    return {
        "participant": event.participant.model_dump(mode="json"),
        "reference": event.reference,
        "registration_id": event.registration_id,
        "status": event.status,
        "event": event.event.model_dump(mode="json"),
        "ticket": getattr(event, "ticket", None),
        "waitlist_position": getattr(event, "waitlist_position", None),
        "reason": getattr(event, "reason", None),
        "changed_fields": list(getattr(event, "changed_fields", None) or []),
        "self_service_url": getattr(event, "self_service_url", None),
        **{name: getattr(event, name) for name in AFTER_EVENT_FIELDS if hasattr(event, name)},
    }


def template_for(event: Any) -> str | None:
    """The template a registration event calls for, or None for no message."""
    if isinstance(event, RegistrationPaidNotice):
        return "confirmation"  # paid: the usual confirmation, with the ticket (issue 14)
    if getattr(event, "status", None) == "pending_payment":
        return None  # the payer's control-number message says it (payments.notices.v1)
    if isinstance(event, REGISTERED_EVENTS):
        return TEMPLATE_FOR_STATUS.get(event.status)
    return TEMPLATE_FOR_EVENT.get(type(event))


def intents_for(received: ReceivedEvent, *, sms_enabled: bool) -> list[Intent]:
    """The messages a consumed registration event calls for."""
    event = received.event
    template = template_for(event)
    if template is None:
        return []
    context = registration_context(event)
    person = event.participant
    language = language_of(person.language)
    dedupe_on = f"{template}:{event.registration_id}" if template in ONCE_PER_REGISTRATION else None
    # The ticket travels with every message that confirms a seat.
    with_ticket = (
        ("qr", "ics") if context.get("ticket") and context["status"] == "confirmed" else ()
    )
    with_ticket, context = calendar_revision(template, event, with_ticket, context)
    intents = [
        Intent(
            "email",
            person.email,
            template,
            language,
            context,
            registration_id=event.registration_id,
            attachments=with_ticket,
            dedupe_on=dedupe_on,
        )
    ]
    if sms_enabled and person.phone:
        intents.append(
            Intent(
                "sms",
                person.phone,
                template,
                language,
                context,
                registration_id=event.registration_id,
                dedupe_on=dedupe_on,
            )
        )
    return intents


# Messages that revise the calendar entry the confirmation created (SEQUENCE 0), with
# the event field that dates the revision: the entry's SEQUENCE is that time in epoch
# seconds (as an event change's is), so a later revision is always higher. A cancelled
# registration's message takes the entry out of the calendar (METHOD:CANCEL, same UID).
CALENDAR_REVISED_AT = {"cancelled": "cancelled_at", "resend": "requested_at"}


def calendar_revision(
    template: str, event: Any, attachments: tuple[str, ...], context: dict[str, Any]
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The attachments and context of a message that revises the calendar entry."""
    revised_at = getattr(event, CALENDAR_REVISED_AT.get(template, ""), None)
    if revised_at is None:
        return attachments, context
    sequence = int(revised_at.timestamp())
    if template == "cancelled":
        attachments = ("ics",)
        # The cancellation is the entry's last revision: one above the second it happened
        # in, so an update in that same second (an event change) is never its equal.
        sequence += 1
    return attachments, {**context, "ics_sequence": sequence}


def resolution_intents(received: ReceivedEvent) -> list[Intent]:
    """Emails to a resolution's focal persons when its progress is recorded or it completes."""
    event = received.event
    if isinstance(event, CoordinatorDigestNotice):
        return digest_intents(event)
    template = TEMPLATE_FOR_RESOLUTION_EVENT.get(type(event))
    if template is None:
        return []
    # Each focal person's own report link (matched by email), when the notice has them.
    links = {link.email.lower(): link for link in getattr(event, "report_links", None) or []}
    resolution = {
        "resolution_id": event.resolution_id,
        "conference_id": event.conference_id,
        "number": event.number,
        "title_sw": event.title_sw,
        "title_en": event.title_en,
        "status": event.status,
        "progress": event.progress,
        "previous_status": getattr(event, "previous_status", None),
        "previous_progress": getattr(event, "previous_progress", None),
        "note": getattr(event, "note", None),
        "rule": getattr(event, "rule", None),
        "days": getattr(event, "days", None),
        "target_date": (
            event.target_date.isoformat() if getattr(event, "target_date", None) else None
        ),
    }
    intents = []
    seen: set[str] = set()
    for person in event.focal_persons:
        if not person.email or person.email.lower() in seen:
            continue
        seen.add(person.email.lower())
        intents.append(
            Intent(
                "email",
                person.email,
                template,
                language_of(person.language),
                {
                    "resolution": resolution,
                    "person": person.model_dump(mode="json"),
                    "report_url": link.url if (link := links.get(person.email.lower())) else None,
                    "report_expires": link.expires_at.isoformat() if link else None,
                },
                resolution_id=event.resolution_id,
            )
        )
    return intents


def digest_intents(event: CoordinatorDigestNotice) -> list[Intent]:
    """The weekly digest, one email to each coordinator's address."""
    context = {"digest": event.model_dump(mode="json")}
    seen: set[str] = set()
    intents = []
    for address in event.recipients:
        if address.lower() in seen:
            continue
        seen.add(address.lower())
        intents.append(
            Intent("email", address, "resolution_digest", language_of(event.language), context)
        )
    return intents


# --------------------------------------------------------------------------- reminders


def parse_time(value: str | datetime) -> datetime:
    """A datetime from an ISO string (``Z`` accepted) or a datetime."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def reminder_id(event_id: str, offset_s: int, starts_at_epoch: float) -> str:
    """One reminder per (event, offset, start time): a moved event gets fresh reminders."""
    return f"{event_id}:{int(offset_s)}:{int(starts_at_epoch)}"


@dataclass(frozen=True)
class Reminder:
    """One reminder of an event: due ``offset_s`` before its start (epoch ``due_at``)."""

    id: str
    event_id: str
    offset_s: int
    due_at: float
    status: Literal["pending", "firing", "done", "cancelled"] = "pending"
    # Notifications recorded when it fired.
    notifications: int = 0


def due_reminders(
    event_id: str, starts_at_epoch: float, offsets_s: list[int], now: float
) -> list[Reminder]:
    """The reminders an event needs: one per offset whose due time is still ahead.

    A reminder whose time has already passed when it is scheduled (e.g. the 7-day one for
    an event published 3 days ahead) is not created: "in 7 days" would be wrong.
    """
    out = []
    for offset in sorted(set(offsets_s), reverse=True):
        due_at = starts_at_epoch - offset
        if due_at <= now:
            continue
        out.append(
            Reminder(
                id=reminder_id(event_id, offset, starts_at_epoch),
                event_id=event_id,
                offset_s=int(offset),
                due_at=due_at,
            )
        )
    return out


def starts_in(offset_s: int) -> dict[str, str]:
    """How far ahead the event is, in words, in both languages."""
    days, rest = divmod(int(offset_s), 86400)
    hours = rest // 3600
    if days == 1 and hours == 0:
        return {"sw": "kesho", "en": "tomorrow"}
    if days >= 1:
        return {"sw": f"baada ya siku {days}", "en": f"in {days} days"}
    if hours >= 1:
        return {"sw": f"baada ya saa {hours}", "en": f"in {hours} hour{'s' if hours > 1 else ''}"}
    return {"sw": "hivi karibuni", "en": "shortly"}


# --------------------------------------------------------------------------- event changes

# What participants must hear about when an organiser edits a published event: where and
# when it takes place. A new description or capacity is not worth a message.
NOTIFIED_CHANGES = {"starts_at": "dates", "ends_at": "dates", "venue": "venue", "city": "venue"}


def event_changes(changed_fields: list[str]) -> list[str]:
    """Which of ``dates`` and ``venue`` an ``EventUpdated`` changed (none: no message)."""
    return sorted({NOTIFIED_CHANGES[f] for f in changed_fields if f in NOTIFIED_CHANGES})


def previous_details(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """The dates and venue as they were, where they differ from the new ones (for "was …"
    in the message); empty when this service had not seen the event before."""
    if not before:
        return {}
    out: dict[str, Any] = {}
    for name in ("starts_at", "ends_at"):
        if before.get(name) and parse_time(before[name]) != parse_time(after[name]):
            out[name] = before[name]
    for name in ("venue", "city"):
        if before.get(name) and before[name] != after[name]:
            out[name] = before[name]
    if out.keys() & {"starts_at", "ends_at"}:  # dates are shown as a pair
        out.setdefault("starts_at", before["starts_at"])
        out.setdefault("ends_at", before["ends_at"])
    if out.keys() & {"venue", "city"}:
        out.setdefault("venue", before["venue"])
        out.setdefault("city", before["city"])
    return out


def retry_delay(
    attempt: int,
    base_s: float,
    max_s: float,
    jitter: Callable[[float, float], float] = random.uniform,
) -> float:
    """Exponential backoff with jitter (between half and all of the ceiling), capped."""
    ceiling = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return jitter(ceiling / 2, ceiling)


class DeliveryError(Exception):
    """A channel refused a message; ``permanent`` says whether retrying can help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


# --------------------------------------------------------------------------- projections


@dataclass(frozen=True)
class Participant:
    """This service's copy of a registration: contact, status, the event's details."""

    registration_id: str
    event_id: str
    status: str | None
    contact: dict[str, Any]
    event: dict[str, Any]
    reference: str | None = None
    ticket: str | None = None
    cadre: str | None = None
    # The event's category code and the nominating institution's code (from the notices).
    category: str | None = None
    institution_code: str | None = None
    # The latest self-service link registration sent (None before notices had one).
    self_service_url: str | None = None


# An event its participants are still going to: "closed" only closes registration.
TAKING_PLACE = ("published", "closed")
# Who hears that an event moved: everyone who may still come.
EVENT_CHANGE_AUDIENCE = ("confirmed", "waitlisted", "pending_approval")


@dataclass(frozen=True)
class KnownEvent:
    """An event as this service knows it: details (once heard of), state, reminder rules
    (None: the service's defaults)."""

    event_id: str
    details: dict[str, Any] | None = None
    state: str = "published"
    rules: list[int] | None = None

    @property
    def taking_place(self) -> bool:
        return self.state in TAKING_PLACE

    def wanted_reminders(self, default_offsets_s: list[int], now: float) -> list[Reminder]:
        """The reminders it should have now (none if unknown, cancelled or past)."""
        if not self.details or not self.taking_place:
            return []
        starts = parse_time(self.details["starts_at"]).timestamp()
        offsets = self.rules if self.rules is not None else default_offsets_s
        return due_reminders(self.event_id, starts, offsets, now)


def participant_intents(
    participant: Participant,
    template: str,
    extra: dict[str, Any],
    *,
    sms: bool,
    attachments: tuple[str, ...] | None = None,
) -> list[Intent]:
    """Intents for a projected participant (reminders, announcements, event changes)."""
    contact = participant.contact
    language = language_of(contact.get("language"))
    context = {
        "participant": contact,
        "reference": participant.reference,
        "registration_id": participant.registration_id,
        "status": participant.status,
        "event": participant.event,
        "ticket": participant.ticket,
        "waitlist_position": None,
        "self_service_url": participant.self_service_url,
        **extra,
    }
    if attachments is None:
        attachments = ("qr",) if template == "reminder" and participant.ticket else ()
    out = [
        Intent(
            "email",
            contact["email"],
            template,
            language,
            context,
            registration_id=participant.registration_id,
            attachments=attachments,
        )
    ]
    if sms and contact.get("phone"):
        out.append(
            Intent(
                "sms", contact["phone"], template, language, context, participant.registration_id
            )
        )
    return out


# --------------------------------------------------------------------------- the aggregate

Status = Literal["pending", "sending", "retry", "sent", "failed", "cancelled"]
# Still on its way: not to be resent yet.
IN_PROGRESS = ("pending", "sending", "retry")
# How many errors a notification keeps (the newest).
KEPT_ERRORS = 10


class Candidate(NamedTuple):
    """A notification to try to claim, with its status and lease as they were seen: the
    claim succeeds only if it is still so (taken meanwhile, it is skipped)."""

    id: str
    status: str
    lease_until: float


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how far apart, a failing notification is tried."""

    max_attempts: int = 8
    base_s: float = 1.0
    max_s: float = 300.0
    jitter: Callable[[float, float], float] = random.uniform

    def delay(self, attempt: int) -> float:
        return retry_delay(attempt, self.base_s, self.max_s, self.jitter)


@dataclass(frozen=True)
class Outcome:
    """What a channel answered to one attempt."""

    sent: bool
    segments: int | None = None
    error: str | None = None
    permanent: bool = False

    @property
    def status(self) -> str:
        """The status the attempt leads to (``retry`` or ``failed`` decided on failure)."""
        return "sent" if self.sent else "failed"


@dataclass(kw_only=True)
class Notification(Aggregate):
    """One message to one recipient on one channel: the delivery log's entry.

    Its id is the idempotency key (cause, channel, recipient), so a redelivered event
    cannot make a second one. Life: pending → (claimed) sending → sent, or retry (due
    again after a backoff) → … → failed; a sent or failed one may be resent (pending
    again, a fresh cycle of attempts). ``NotificationSent`` / ``NotificationFailed`` are
    recorded with the outcome.
    """

    id: str
    channel: Channel
    recipient: str
    template: str
    language: str
    context: dict[str, Any]
    cause_event_id: str
    cause_event_type: str
    created_at: str
    attachments: list[str] = field(default_factory=list)
    registration_id: str | None = None
    resolution_id: str | None = None
    event_id: str | None = None
    announcement_id: str | None = None
    status: Status = "pending"
    attempts: int = 0
    # Epoch seconds: when it may be tried (again), and until when a sender holds it.
    next_attempt_at: float = 0.0
    lease_until: float = 0.0
    last_error: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    sent_at: str | None = None
    segments: int | None = None
    resend_count: int = 0
    erased: bool = False
    # The trace of what caused it: the send continues it.
    traceparent: str | None = None
    # What the store read besides the state (the document's outbox); opaque here.
    stored: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_intent(
        cls,
        intent: Intent,
        *,
        cause_event_id: str,
        cause_event_type: str,
        now: datetime,
        key: str | None = None,
        announcement_id: str | None = None,
        traceparent: str | None = None,
    ) -> Notification:
        """A new entry for one intent (caused by an event, a reminder or an
        announcement); ``key`` replaces the intent's own idempotency key."""
        return cls(
            id=key or intent.key(cause_event_id),
            channel=intent.channel,
            recipient=intent.recipient,
            template=intent.template,
            language=intent.language,
            context=intent.context,
            attachments=list(intent.attachments),
            registration_id=intent.registration_id,
            resolution_id=intent.resolution_id,
            event_id=(intent.context.get("event") or {}).get("event_id"),
            announcement_id=announcement_id,
            cause_event_id=cause_event_id,
            cause_event_type=cause_event_type,
            created_at=iso(now),
            traceparent=traceparent,
        )

    # -- sending ------------------------------------------------------------------------

    def due(self, now: datetime) -> bool:
        """May a sender take it now: due (pending or retry), or its sender's lease expired."""
        at = now.timestamp()
        if self.status in ("pending", "retry"):
            return self.next_attempt_at <= at
        return self.status == "sending" and self.lease_until < at

    def claim(self, now: datetime, lease_s: float) -> None:
        """A sender takes it for ``lease_s`` (another may take it once the lease expired).

        The store makes this change atomically, conditioned on the status and lease the
        sender saw (``Candidate``), so two senders never hold one notification."""
        self.status = "sending"
        self.lease_until = now.timestamp() + lease_s
        self.attempts += 1

    def record_outcome(self, outcome: Outcome, now: datetime, policy: RetryPolicy) -> float | None:
        """The channel's answer to the attempt; returns the delay of the retry, if any."""
        if outcome.sent:
            self.mark_sent(now, outcome.segments)
            return None
        return self.mark_failed(outcome.error or "", now, policy, permanent=outcome.permanent)

    def mark_sent(self, now: datetime, segments: int | None = None) -> None:
        self.status = "sent"
        self.sent_at = iso(now)
        self.lease_until = 0.0
        self.segments = segments
        self.record(
            NotificationSent(
                notification_id=self.id,
                channel=self.channel,
                template=self.template,
                cause_event_id=self.cause_event_id,
                cause_event_type=self.cause_event_type,
                registration_id=self.registration_id,
                resolution_id=self.resolution_id,
                attempts=self.attempts,
                sent_at=now,
                segments=segments,
            )
        )

    def mark_failed(
        self, error: str, now: datetime, policy: RetryPolicy, *, permanent: bool
    ) -> float | None:
        """Failed for good (permanent, or out of attempts: ``NotificationFailed``), or due
        again after a backoff: returns that delay."""
        self.errors = self.errors[-(KEPT_ERRORS - 1) :] + [{"at": iso(now), "error": error}]
        self.last_error = error
        self.lease_until = 0.0
        if permanent or self.attempts >= policy.max_attempts:
            self.status = "failed"
            self.record(
                NotificationFailed(
                    notification_id=self.id,
                    channel=self.channel,
                    template=self.template,
                    cause_event_id=self.cause_event_id,
                    cause_event_type=self.cause_event_type,
                    registration_id=self.registration_id,
                    resolution_id=self.resolution_id,
                    attempts=self.attempts,
                    failed_at=now,
                    error=error,
                    permanent=permanent,
                )
            )
            return None
        delay = policy.delay(self.attempts)
        self.status = "retry"
        self.next_attempt_at = now.timestamp() + delay
        return delay

    def rebase(self, current: Notification) -> None:
        """Keep this outcome over ``current``, a newer revision someone else wrote
        meanwhile: the relay removing published events, an erasure scrubbing the
        recipient. Those writes touch none of the state an outcome sets."""
        self.rev = current.rev
        self.stored = current.stored
        self.recipient = current.recipient
        self.context = current.context
        self.erased = current.erased

    # -- organisers ----------------------------------------------------------------------

    def resend(self) -> None:
        """Send it again: a fresh cycle of attempts on the same entry."""
        if self.erased:
            raise DomainError(
                "recipient_erased", "The recipient's personal data was erased; nothing to send."
            )
        if self.status in IN_PROGRESS:
            raise DomainError("delivery_in_progress", "This notification is still being delivered.")
        self.status = "pending"
        self.next_attempt_at = 0.0
        self.lease_until = 0.0
        self.attempts = 0
        self.resend_count += 1


# --------------------------------------------------------------------------- announcements


# Who an announcement may go to: the statuses of people who may still come.
AUDIENCE_STATUSES = ("confirmed", "pending_approval", "pending_payment", "waitlisted")


@dataclass(frozen=True)
class Audience:
    """Who an announcement goes to: an event's participants in ``statuses`` (default
    confirmed), narrowed to a cadre, to categories and to nominating institutions (each
    empty: no narrowing). Every filter is a plain equality or ``$in``."""

    statuses: tuple[str, ...] = ("confirmed",)
    cadre: str | None = None
    categories: tuple[str, ...] = ()
    institution_codes: tuple[str, ...] = ()

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Audience:
        statuses = tuple(sorted(set(spec.get("statuses") or ("confirmed",))))
        unknown = [s for s in statuses if s not in AUDIENCE_STATUSES]
        if unknown:
            raise DomainError(
                "invalid_audience",
                f"Status {unknown[0]!r} is not one an announcement may go to.",
                field="statuses",
            )
        return cls(
            statuses=statuses,
            cadre=spec.get("cadre") or None,
            categories=tuple(sorted(set(spec.get("categories") or ()))),
            institution_codes=tuple(sorted(set(spec.get("institution_codes") or ()))),
        )

    def admits(self, participant: dict[str, Any]) -> bool:
        """Whether a projected participant (a document) belongs to this audience."""
        if participant.get("status") not in self.statuses:
            return False
        if self.cadre and participant.get("cadre") != self.cadre:
            return False
        if self.categories and participant.get("category") not in self.categories:
            return False
        return not (
            self.institution_codes
            and participant.get("institution_code") not in self.institution_codes
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "statuses": list(self.statuses),
            "cadre": self.cadre,
            "categories": list(self.categories),
            "institution_codes": list(self.institution_codes),
        }


@dataclass
class Announcement:
    """An organiser's message to an event's participants (confirmed by default; see
    ``Audience``), fanned out into notifications in batches; ``cursor`` is the progress."""

    id: str
    event_id: str
    subject_sw: str
    subject_en: str
    body_sw: str
    body_en: str
    channels: list[str]
    targets: list[str]
    created_at: str
    cadre: str | None = None
    statuses: list[str] = field(default_factory=lambda: ["confirmed"])
    categories: list[str] = field(default_factory=list)
    institution_codes: list[str] = field(default_factory=list)
    total: int = 0
    cursor: int = 0
    status: Literal["fanning_out", "done"] = "fanning_out"
    lease_until: float = 0.0
    completed_at: str | None = None

    @classmethod
    def create(
        cls, announcement_id: str, spec: dict[str, Any], targets: list[str], now: datetime
    ) -> Announcement:
        """The targets are a snapshot of the audience when it is created."""
        fields = {k: spec[k] for k in ANNOUNCEMENT_FIELDS if k in spec}
        audience = Audience.of(spec).as_dict()
        return cls(
            id=announcement_id,
            **fields,
            statuses=audience["statuses"],
            categories=audience["categories"],
            institution_codes=audience["institution_codes"],
            targets=list(targets),
            total=len(targets) * len(spec["channels"]),
            status="fanning_out" if targets else "done",
            created_at=iso(now),
            completed_at=None if targets else iso(now),
        )

    def next_batch(self, size: int) -> list[str]:
        return self.targets[self.cursor : self.cursor + max(1, size)]

    def advanced(self, by: int, now: datetime, lease_s: float) -> Announcement:
        """After a batch: the cursor moved on; done at the end (lease released), else the
        lease extended for the next batch."""
        cursor = self.cursor + by
        done = cursor >= len(self.targets)
        return replace(
            self,
            cursor=cursor,
            lease_until=0.0 if done else now.timestamp() + lease_s,
            status="done" if done else self.status,
            completed_at=iso(now) if done else self.completed_at,
        )

    def message(self) -> dict[str, str]:
        return {
            "subject_sw": self.subject_sw,
            "subject_en": self.subject_en,
            "body_sw": self.body_sw,
            "body_en": self.body_en,
        }

    def progress(self, counts: dict[str, int]) -> dict[str, Any]:
        """Its progress from its notifications' statuses: total, queued, sent, failed…"""
        queued = sum(counts.values())
        sent = counts.get("sent", 0)
        failed = counts.get("failed", 0) + counts.get("cancelled", 0)
        return {
            "id": self.id,
            "event_id": self.event_id,
            "cadre": self.cadre,
            "statuses": self.statuses,
            "categories": self.categories,
            "institution_codes": self.institution_codes,
            "channels": self.channels,
            "status": "done" if self.status == "done" and sent + failed >= queued else "sending",
            "fan_out": self.status,
            "total": self.total,
            "queued": queued,
            "sent": sent,
            "failed": failed,
            "pending": max(0, queued - sent - failed),
            "skipped": max(0, self.total - queued) if self.status == "done" else 0,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
        }


ANNOUNCEMENT_FIELDS = (
    "event_id",
    "cadre",
    "subject_sw",
    "subject_en",
    "body_sw",
    "body_en",
    "channels",
)


# --------------------------------------------------------------------------- institutions
# Issue 13 B: an institution's contact person asked to sign in; email them the link.

INSTITUTION_SIGN_IN = "institution_sign_in"


def institution_sign_in_intents(received: ReceivedEvent) -> list[Intent]:
    """The one email an ``InstitutionSignInRequested`` notice calls for (no SMS: the
    link is a credential, and an SMS may be read on a shared phone's lock screen)."""
    event = received.event
    contact = event.contact
    context = {
        "institution": {
            "code": event.institution_code,
            "name_sw": event.institution_name_sw,
            "name_en": event.institution_name_en,
        },
        "contact": {"full_name": contact.full_name, "language": contact.language},
        "sign_in_url": event.sign_in_url,
        "expires_at": iso(event.expires_at),
    }
    return [
        Intent("email", contact.email, INSTITUTION_SIGN_IN, language_of(contact.language), context)
    ]


# --------------------------------------------------------------------------- payments (issue 14)
# The payers' notices of payments.notices.v1: the control number to pay with, a reminder
# before the bill expires, a receipt for each payment.
TEMPLATE_FOR_PAYMENT_NOTICE: dict[type, str] = {
    ControlNumberNotice: "payment_control_number",
    PaymentReminderNotice: "payment_reminder",
    PaymentReceiptNotice: "payment_receipt",
}


def payment_intents(received: ReceivedEvent, *, sms_enabled: bool) -> list[Intent]:
    """The email and SMS a payer's notice calls for, in the payer's language."""
    notice = received.event
    template = TEMPLATE_FOR_PAYMENT_NOTICE.get(type(notice))
    if template is None:
        return []
    payment = notice.model_dump(
        mode="json", exclude={"event", "payer", "reference", "registration_id"}
    )
    context = {
        "participant": notice.payer.model_dump(mode="json"),
        "reference": notice.reference,
        "registration_id": notice.registration_id,
        "status": "pending_payment",
        "event": notice.event.model_dump(mode="json"),
        "payment": payment,
        "self_service_url": None,
    }
    language = language_of(notice.payer.language)
    intents = [
        Intent("email", notice.payer.email, template, language, context,
               registration_id=notice.registration_id)
    ]  # fmt: skip
    if sms_enabled and notice.payer.phone:
        intents.append(
            Intent("sms", notice.payer.phone, template, language, context,
                   registration_id=notice.registration_id)
        )  # fmt: skip
    return intents
