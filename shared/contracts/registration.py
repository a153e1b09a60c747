"""Events on ``registration.v1``, the public stream of the registration service.

Any e-GA system may be granted read access to it (docs/integrating.md), so it carries no
secret and no contact details. A registration's events (version 2) say what happened to
which registration (its id and reference), for which event, with the participant's
institution, cadre and language: the purposes docs/integrating.md names (participation
statistics per institution and cadre, planning interpretation and materials per language,
and a reference a participant can quote to another system). What the notification service
needs to reach a participant (name, email, phone, the check-in ticket, the self-service
link, free-text reasons) is on the private stream ``registration.notices.v1``
(shared/contracts/registration_notices.py).

The version-1 registration events carried the contact details and the ticket to every
reader. They are retired (no longer published; kept so that the records still on the topic
parse and their schemas stay documented): a secret and contact details on a public stream
cannot stay for a transition period. The catalogue events and ``PersonalDataErased`` carry
no personal data and stay at version 1.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.contracts.base import IntegrationEvent, register
from shared.topics import REGISTRATION

Language = Literal["sw", "en"]
# ``pending_payment`` (issue 14): a registration in a paid category, holding its seat
# until its bill is paid or expires. Added within the version (docs/integrating.md:
# status values may grow; act on the ones you know).
RegistrationStatus = Literal[
    "confirmed", "waitlisted", "pending_approval", "rejected", "cancelled", "pending_payment"
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
    # Version 1 carried contact details and the ticket: replaced by version 2 (below).
    retired = True

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


# -- version 2: no secret, no contact details ------------------------------------------


class ParticipantProfile(BaseModel):
    """What the public stream says about a participant: nothing to reach them by.

    ``institution``, ``cadre`` and ``category`` are for participation statistics per
    institution and category, ``language`` for planning interpretation and materials. Together they may still
    single out a person (the one permanent secretary of a ministry): subscribers treat them
    as personal data and erase them on ``PersonalDataErased``.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    institution: str
    cadre: str
    language: Language
    # Added within version 2 (optional, additive): the event's participant category code
    # (``cadre`` keeps the five old values: a category outside them is ``other_officer``
    # there), and the code of the institution that nominated the participant (None when
    # they registered themselves).
    category: str | None = None
    institution_code: str | None = None


class _RegistrationEventV2(IntegrationEvent):
    domain = "registration"
    topic = REGISTRATION
    schema_version = 2
    aggregate_field = "registration_id"

    registration_id: str
    reference: str
    event: EventDetails
    participant: ParticipantProfile
    status: RegistrationStatus


@register
class ParticipantRegisteredV2(_RegistrationEventV2):
    """A participant registered; ``status`` says confirmed, waitlisted or pending approval."""

    registered_at: datetime
    waitlist_position: int | None = None


@register
class ParticipantWaitlistedV2(_RegistrationEventV2):
    """The participant was put on the waiting list (event full), at ``waitlist_position``."""

    waitlist_position: int
    waitlisted_at: datetime


@register
class WaitlistPromotedV2(_RegistrationEventV2):
    """A seat freed up (cancellation or raised capacity): the first waitlisted is confirmed."""

    promoted_at: datetime


@register
class RegistrationApprovedV2(_RegistrationEventV2):
    """An organiser approved a nomination; ``status`` is confirmed or waitlisted by capacity."""

    approved_at: datetime
    waitlist_position: int | None = None


@register
class RegistrationRejectedV2(_RegistrationEventV2):
    """An organiser rejected a nomination (the reason goes to the participant only)."""

    rejected_at: datetime


@register
class RegistrationUpdatedV2(_RegistrationEventV2):
    """The participant changed their details; ``changed_fields`` names them, no values."""

    changed_fields: list[str]
    updated_at: datetime


@register
class RegistrationCancelledV2(_RegistrationEventV2):
    """The registration was cancelled by the participant or an organiser."""

    cancelled_at: datetime
    cancelled_by: Literal["participant", "organiser"]
    # Payments (issue 14): ``unpaid`` when the bill expired unpaid (cancelled_by says
    # organiser: not the participant's own act).
    cause: Literal["unpaid"] | None = None


# Payments (issue 14): a registration in a paid category was paid for.
@register
class RegistrationPaid(IntegrationEvent):
    """The bill of a ``pending_payment`` registration was paid: it is confirmed."""

    domain = "registration"
    topic = REGISTRATION
    aggregate_field = "registration_id"

    registration_id: str
    reference: str
    event: EventDetails
    participant: ParticipantProfile
    status: RegistrationStatus
    bill_id: str
    paid_at: datetime


@register
class ParticipantCheckedInV2(_RegistrationEventV2):
    """A registrar scanned the ticket: attendance recorded for ``day`` (YYYY-MM-DD, EAT)."""

    day: str
    checked_in_at: datetime


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


# -- certificates of attendance (issue 16) ---------------------------------------------
# No personal data: which registration got which certificate for which days. The serial
# is left out too: with it anyone reads the holder's name on the verification page.


@register
class CertificateIssued(IntegrationEvent):
    """A certificate of attendance was issued to a participant who checked in at least
    once (``replaces``: the certificate it supersedes, after a reissue)."""

    domain = "registration"
    topic = REGISTRATION
    aggregate_field = "registration_id"

    certificate_id: str
    registration_id: str
    event_id: str
    days: list[str]
    cpd_hours: float
    issued_at: datetime
    replaces: str | None = None


@register
class CertificateRevoked(IntegrationEvent):
    """A certificate no longer stands: revoked by an organiser, superseded by a reissue
    (``replaced_by``), or its holder's personal data was erased."""

    domain = "registration"
    topic = REGISTRATION
    aggregate_field = "registration_id"

    certificate_id: str
    registration_id: str
    event_id: str
    reason: Literal["revoked", "reissued", "erased"]
    revoked_at: datetime
    replaced_by: str | None = None
