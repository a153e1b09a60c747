"""Events on ``registration.v1``, published by the registration service.

Each carries what a consumer needs to act without calling back: the participant's
contact details and language, the event's details and, once confirmed, the ticket.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.contracts.base import IntegrationEvent, register
from shared.topics import REGISTRATION

Language = Literal["sw", "en"]
RegistrationStatus = Literal[
    "confirmed", "waitlisted", "pending_approval", "rejected", "cancelled"
]


class EventDetails(BaseModel):
    """The event (conference, seminar, training) a registration is for."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str
    code: str
    title_sw: str
    title_en: str
    venue: str
    city: str
    starts_at: datetime
    ends_at: datetime
    timezone: str = "Africa/Dar_es_Salaam"


class ParticipantContact(BaseModel):
    """Personal data: never logged; erased on request or after the retention period."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    full_name: str
    email: str
    phone: str
    language: Language
    institution: str
    position: str | None = None


class _RegistrationEvent(IntegrationEvent):
    domain = "registration"
    topic = REGISTRATION
    aggregate_field = "registration_id"

    registration_id: str
    reference: str
    event: EventDetails
    participant: ParticipantContact
    status: RegistrationStatus


@register
class ParticipantRegistered(_RegistrationEvent):
    """A participant registered; ``status`` says confirmed, waitlisted or pending approval."""

    cadre: str
    registered_at: datetime
    waitlist_position: int | None = None
    ticket: str | None = None


@register
class ConfirmationResendRequested(_RegistrationEvent):
    """Someone registered again with the same email: resend to the address on file."""

    requested_at: datetime
    ticket: str | None = None


class _EventCatalogueEvent(IntegrationEvent):
    domain = "registration"
    topic = REGISTRATION
    aggregate_field = "event_id"

    event_id: str
    event: EventDetails
    capacity: int
    state: Literal["draft", "published", "closed", "cancelled"]


@register
class EventPublished(_EventCatalogueEvent):
    """An event opened to the public."""
