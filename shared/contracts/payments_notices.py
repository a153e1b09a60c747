"""Events on ``payments.notices.v1``: the private stream from payments to notification.

Each bill change that calls for a message to the payer is published twice, from the same
outbox write: its public event on ``payments.v1`` (no contact details) and its notice
here, with what notification needs to write to the payer without calling back: name,
email, phone, language, the event's details, the control number, amounts and expiry.
Keyed by bill id.

Only the payments service may write this topic and only the notification service's
consumer group may read it (Kafka ACLs: deploy/kafka-acls.sh, docs/operations.md). It is
not part of the integration contract of docs/integrating.md.
"""

from __future__ import annotations

from datetime import datetime

from shared.contracts.base import IntegrationEvent, register
from shared.contracts.payments import Currency, PaymentFlag
from shared.contracts.registration import EventDetails, ParticipantContact
from shared.topics import PAYMENTS_NOTICES


class _PayerNotice(IntegrationEvent):
    domain = "payments"
    topic = PAYMENTS_NOTICES
    aggregate_field = "bill_id"

    bill_id: str
    # The registration the payer is told about (a group bill: its first nominee's).
    registration_id: str
    reference: str
    event: EventDetails
    payer: ParticipantContact
    control_number: str
    amount_tzs: int
    currency: Currency = "TZS"
    outstanding_tzs: int
    expires_at: datetime


@register
class ControlNumberNotice(_PayerNotice):
    """The control number to pay with: amount, expiry and how to pay."""


@register
class PaymentReminderNotice(_PayerNotice):
    """The bill is still not paid in full and expires soon."""


@register
class PaymentReceiptNotice(_PayerNotice):
    """A payment was received: the receipt (and whether the bill is now paid)."""

    receipt_number: str
    paid_tzs: int
    paid_total_tzs: int
    channel: str
    psp_receipt: str | None = None
    paid_at: datetime
    bill_paid: bool
    flags: list[PaymentFlag] = []
