"""Events on ``registration.notices.v1``: the private stream from registration to notification.

Each registration change that calls for a message to the participant is published twice,
from the same outbox write: its public event on ``registration.v1`` (no secret, no contact
details) and its notice here, with what notification needs to write to the participant
without calling back: contact details and language, the event's details, the check-in
ticket once confirmed, the self-service link, and the free-text reason of a rejection or
cancellation. Keyed by registration id, so a registration's notices stay in order.

Only the registration service may write this topic and only the notification service's
consumer group may read it (Kafka ACLs: deploy/kafka-acls.sh, docs/operations.md). It is
not part of the integration contract of docs/integrating.md: other systems never see it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.contracts.base import IntegrationEvent, register
from shared.contracts.registration import EventDetails, ParticipantContact, RegistrationStatus
from shared.topics import REGISTRATION_NOTICES


class _ParticipantNotice(IntegrationEvent):
    domain = "registration"
    topic = REGISTRATION_NOTICES
    aggregate_field = "registration_id"

    registration_id: str
    reference: str
    event: EventDetails
    participant: ParticipantContact
    status: RegistrationStatus
    # A secret: whoever holds it checks the participant in. Set while confirmed.
    ticket: str | None = None
    # A credential too: the link that opens the participant's own registration (and
    # nobody else's) on the self-service page. Set where registration can mint one.
    self_service_url: str | None = None
    # Added (optional, additive): the event's participant category code and the code of
    # the nominating institution (None when self-registered).
    category: str | None = None
    institution_code: str | None = None


@register
class ParticipantRegisteredNotice(_ParticipantNotice):
    """A participant registered (``status``: confirmed, waitlisted or pending approval)."""

    cadre: str
    waitlist_position: int | None = None
    # Payments (issue 14): while ``pending_payment``, what the payments service bills
    # (the category's fee, integer TZS) and until when the seat is held.
    amount_due_tzs: int | None = None
    payment_due_by: datetime | None = None


@register
class ParticipantWaitlistedNotice(_ParticipantNotice):
    """The participant was put on the waiting list, at ``waitlist_position``."""

    waitlist_position: int


@register
class WaitlistPromotedNotice(_ParticipantNotice):
    """A seat freed up: the waitlisted participant is confirmed (with the ticket)."""

    # Payments (issue 14): promoted into a paid category, the seat is held for payment.
    amount_due_tzs: int | None = None
    payment_due_by: datetime | None = None


@register
class RegistrationApprovedNotice(_ParticipantNotice):
    """An organiser approved the nomination: confirmed (with the ticket) or waitlisted."""

    waitlist_position: int | None = None
    # Payments (issue 14): as on ParticipantRegisteredNotice.
    amount_due_tzs: int | None = None
    payment_due_by: datetime | None = None


@register
class RegistrationRejectedNotice(_ParticipantNotice):
    """An organiser rejected the nomination, with the reason the participant is told."""

    reason: str


@register
class RegistrationUpdatedNotice(_ParticipantNotice):
    """The participant changed their details (``participant`` has the new ones)."""

    changed_fields: list[str]


@register
class RegistrationCancelledNotice(_ParticipantNotice):
    """The registration was cancelled, by the participant or an organiser."""

    cancelled_at: datetime
    cancelled_by: Literal["participant", "organiser"]
    reason: str | None = None
    # Payments (issue 14): ``unpaid`` when the bill expired unpaid.
    cause: Literal["unpaid"] | None = None


# Payments (issue 14).
@register
class RegistrationPaidNotice(_ParticipantNotice):
    """The registration's bill was paid: confirmed, with the ticket."""

    bill_id: str


@register
class ParticipantCheckedInNotice(_ParticipantNotice):
    """The participant was checked in for ``day`` (YYYY-MM-DD, venue time)."""

    day: str
    checked_in_at: datetime


@register
class ConfirmationResendRequestedNotice(_ParticipantNotice):
    """Someone registered again with the participant's email: resend to the address on file."""

    requested_at: datetime


# -- certificates and evaluation (issue 16) --------------------------------------------


@register
class CertificateIssuedNotice(_ParticipantNotice):
    """The participant's certificate of attendance is ready: ``certificate_url`` downloads
    the PDF (through their self-service link: a credential), ``verify_url`` is public."""

    certificate_id: str
    days: list[str]
    cpd_hours: float
    certificate_url: str
    verify_url: str
    issued_at: datetime


@register
class EvaluationInvitedNotice(_ParticipantNotice):
    """The event is over: the participant is asked to answer its evaluation, once, at
    ``evaluation_url`` (their own link: a credential). ``certificate_waits`` says their
    certificate is released once they answer."""

    evaluation_url: str
    certificate_waits: bool = False
    invited_at: datetime


# -- institutions (issue 13 B) ----------------------------------------------------------


class InstitutionContactAddress(BaseModel):
    """Where an institution's contact person is written to, in their language."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    contact_id: str
    full_name: str
    email: str
    language: Literal["sw", "en"] = "sw"


@register
class InstitutionSignInRequested(IntegrationEvent):
    """An institution's contact person asked to sign in: email them the link.

    ``sign_in_url`` is a credential: it opens the institution's page once (single use)
    until ``expires_at`` (minutes away). Keyed by institution code.
    """

    domain = "registration"
    topic = REGISTRATION_NOTICES
    aggregate_field = "institution_code"

    institution_code: str
    institution_name_sw: str
    institution_name_en: str
    contact: InstitutionContactAddress
    sign_in_url: str
    expires_at: datetime
    requested_at: datetime


@register
class InstitutionContactErased(IntegrationEvent):
    """An institution's contact person was erased (PDPA): notification drops its copies
    (unsent messages to ``email`` are cancelled, sent ones scrubbed)."""

    domain = "registration"
    topic = REGISTRATION_NOTICES
    aggregate_field = "institution_code"

    institution_code: str
    contact_id: str
    email: str
    erased_at: datetime


# -- group bills (issue 14) -------------------------------------------------------------


@register
class GroupBillRequested(IntegrationEvent):
    """An institution's contact person asked for one bill for all its unpaid nominees of
    an event (the institution page's button). Payments (its consumer group reads this
    stream) opens the group bill, one line per registration, replacing their single
    bills; its control number goes to ``payer``. Keyed by institution code; payments
    deduplicates on the CloudEvents id."""

    domain = "registration"
    topic = REGISTRATION_NOTICES
    aggregate_field = "institution_code"

    institution_code: str
    event_id: str
    registration_ids: list[str]
    payer: ParticipantContact
    requested_at: datetime
