"""Notification domain: which messages an event calls for, and the retry policy. Pure."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.contracts.registration import (
    ConfirmationResendRequested,
    ParticipantRegistered,
    ParticipantWaitlisted,
)
from shared.envelope import ReceivedEvent

Channel = Literal["email", "sms"]
# ParticipantRegistered by status; a waitlisted registration is told by ParticipantWaitlisted.
TEMPLATE_FOR_STATUS = {
    "confirmed": "confirmation",
    "pending_approval": "pending_approval",
}


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

    def key(self, cause_event_id: str) -> str:
        """One notification per (event id, channel, recipient): the idempotency key."""
        raw = f"{cause_event_id}|{self.channel}|{self.recipient.lower()}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


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
    }


def intents_for(received: ReceivedEvent, *, sms_enabled: bool) -> list[Intent]:
    """The messages a consumed event calls for."""
    event = received.event
    if isinstance(event, ParticipantRegistered):
        template = TEMPLATE_FOR_STATUS.get(event.status)
    elif isinstance(event, ParticipantWaitlisted):
        template = "waitlisted"
    elif isinstance(event, ConfirmationResendRequested):
        template = "resend"
    else:
        return []
    if template is None:
        return []
    context = registration_context(event)
    person = event.participant
    with_ticket = ("qr", "ics") if context.get("ticket") else ()
    intents = [
        Intent(
            "email",
            person.email,
            template,
            person.language,
            context,
            registration_id=event.registration_id,
            attachments=with_ticket,
        )
    ]
    if sms_enabled and person.phone:
        intents.append(
            Intent(
                "sms",
                person.phone,
                template,
                person.language,
                context,
                registration_id=event.registration_id,
            )
        )
    return intents


def retry_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter, capped."""
    ceiling = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


class DeliveryError(Exception):
    """A channel refused a message; ``permanent`` says whether retrying can help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent
