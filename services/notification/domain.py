"""Notification domain: which messages an event calls for, reminder schedules, retry policy.

Pure: no I/O. Handlers turn consumed events into ``Intent`` objects here and record them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

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
from shared.contracts.resolutions import ResolutionCompleted, ResolutionUpdated
from shared.envelope import ReceivedEvent

Channel = Literal["email", "sms"]
LANGUAGES = ("sw", "en")
# ParticipantRegistered by status; a waitlisted registration is told by ParticipantWaitlisted.
TEMPLATE_FOR_STATUS = {
    "confirmed": "confirmation",
    "pending_approval": "pending_approval",
}
# One template per registration event (ParticipantRegistered depends on its status).
TEMPLATE_FOR_EVENT: dict[type, str] = {
    ParticipantWaitlisted: "waitlisted",
    WaitlistPromoted: "promoted",
    RegistrationApproved: "approved",
    RegistrationRejected: "rejected",
    RegistrationUpdated: "updated",
    RegistrationCancelled: "cancelled",
    ParticipantCheckedIn: "checked_in",
    ConfirmationResendRequested: "resend",
}
TEMPLATE_FOR_RESOLUTION_EVENT: dict[type, str] = {
    ResolutionUpdated: "resolution_updated",
    ResolutionCompleted: "resolution_completed",
}
# Check-in is recorded for every day of a conference; thank the participant once.
ONCE_PER_REGISTRATION = {"checked_in"}
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
    }


def template_for(event: Any) -> str | None:
    """The template a registration event calls for, or None for no message."""
    if isinstance(event, ParticipantRegistered):
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


def resolution_intents(received: ReceivedEvent) -> list[Intent]:
    """Emails to a resolution's focal persons when its progress is recorded or it completes."""
    event = received.event
    template = TEMPLATE_FOR_RESOLUTION_EVENT.get(type(event))
    if template is None:
        return []
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
                {"resolution": resolution, "person": person.model_dump(mode="json")},
                resolution_id=event.resolution_id,
            )
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


def due_reminders(
    event_id: str, starts_at_epoch: float, offsets_s: list[int], now: float
) -> list[dict[str, Any]]:
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
            {
                "_id": reminder_id(event_id, offset, starts_at_epoch),
                "event_id": event_id,
                "offset_s": int(offset),
                "due_at": due_at,
            }
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


def retry_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with jitter (between half and all of the ceiling), capped."""
    ceiling = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


class DeliveryError(Exception):
    """A channel refused a message; ``permanent`` says whether retrying can help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent
