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
RegistrationStatus = Literal["confirmed", "waitlisted", "pending_approval", "rejected", "cancelled"]


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
class ParticipantWaitlisted(_RegistrationEvent):
    """The participant was put on the waiting list (event full), at ``waitlist_position``."""

    waitlist_position: int
    waitlisted_at: datetime


@register
class WaitlistPromoted(_RegistrationEvent):
    """A seat freed up (cancellation or raised capacity): the first waitlisted is confirmed."""

    promoted_at: datetime
    ticket: str | None = None


@register
class RegistrationApproved(_RegistrationEvent):
    """An organiser approved a nomination; ``status`` is confirmed or waitlisted by capacity."""

    approved_at: datetime
    approved_by: str
    ticket: str | None = None
    waitlist_position: int | None = None


@register
class RegistrationRejected(_RegistrationEvent):
    """An organiser rejected a nomination, with a reason."""

    rejected_at: datetime
    rejected_by: str
    reason: str


@register
class RegistrationUpdated(_RegistrationEvent):
    """The participant changed their details (phone, position, needs, language)."""

    changed_fields: list[str]
    updated_at: datetime


@register
class RegistrationCancelled(_RegistrationEvent):
    """The registration was cancelled by the participant or an organiser."""

    cancelled_at: datetime
    cancelled_by: Literal["participant", "organiser"]
    reason: str | None = None


@register
class ParticipantCheckedIn(_RegistrationEvent):
    """A registrar scanned the ticket: attendance recorded for ``day`` (YYYY-MM-DD, EAT)."""

    day: str
    checked_in_at: datetime


@register
class ConfirmationResendRequested(_RegistrationEvent):
    """Someone registered again with the same email: resend to the address on file."""

    requested_at: datetime
    ticket: str | None = None


@register
class PersonalDataErased(IntegrationEvent):
    """A registration's personal data was erased (on request or by the retention rule).

    Every service that keeps a copy removes it. Carries no personal data itself.
    """

    domain = "registration"
    topic = REGISTRATION
    aggregate_field = "registration_id"

    registration_id: str
    event_id: str
    reason: Literal["participant_request", "retention"]
    erased_at: datetime


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


@register
class EventUpdated(_EventCatalogueEvent):
    """An event's details changed (dates, venue, capacity, …)."""

    changed_fields: list[str] = []


@register
class EventCancelled(_EventCatalogueEvent):
    """An event was cancelled."""

    reason: str | None = None
