"""Events on ``payments.v1``, the public stream of the payments service (issue 14).

A bill is what a participant (or an institution, for its nominees) owes for an event's
fee; GePG gives it a control number, the payer pays it by mobile money or a bank, GePG
notifies each payment and a daily reconciliation settles the books. Keyed by bill id, so
a bill's events stay in order (``ReconciliationCompleted`` by its reconciliation id).

Public: no name, phone or email of a payer (those go to the notification service only,
on the private ``payments.notices.v1``). Money is integer TZS (``amount_tzs``); never a
float. Registration consumes ``BillPaid`` (the registration is confirmed) and
``BillExpired`` (cancelled with reason ``unpaid``); organisers' tools and other e-GA
systems may follow the rest.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.contracts.base import IntegrationEvent, register
from shared.topics import PAYMENTS

Currency = Literal["TZS"]
# GePG's BillPayOpt: 1 FULL (one payment, at least the amount), 2 PARTIAL (several add
# up), 3 EXACT (one payment of exactly the amount).
PaymentOption = Literal["full", "partial", "exact"]
# What an organiser must look at: paid more than billed, paid after the bill expired or
# was cancelled (policy: confirm if a seat is free, else refund).
PaymentFlag = Literal["overpaid", "after_expiry", "after_cancellation"]


class _BillEvent(IntegrationEvent):
    domain = "payments"
    topic = PAYMENTS
    aggregate_field = "bill_id"

    bill_id: str
    event_id: str
    # The registrations the bill pays for: one, or an institution's nominees.
    registration_ids: list[str]


@register
class BillCreated(_BillEvent):
    """A bill was made for a registration in a paid category; it goes to GePG next."""

    amount_tzs: int
    currency: Currency = "TZS"
    pay_option: PaymentOption
    category: str | None = None
    institution_code: str | None = None
    expires_at: datetime
    created_at: datetime


@register
class ControlNumberIssued(_BillEvent):
    """GePG gave the bill its control number: the payer can pay it now."""

    control_number: str
    amount_tzs: int
    currency: Currency = "TZS"
    expires_at: datetime
    issued_at: datetime


@register
class PaymentReceived(_BillEvent):
    """GePG notified a payment of the bill (one of several, under a partial option)."""

    payment_id: str
    control_number: str
    amount_tzs: int
    currency: Currency = "TZS"
    # As GePG names them (UsdPayChnl): MOBILE, BANK, IB, ...
    channel: str
    psp_name: str | None = None
    psp_receipt: str | None = None
    paid_at: datetime
    paid_total_tzs: int
    outstanding_tzs: int
    flags: list[PaymentFlag] = []


@register
class BillPaid(_BillEvent):
    """What was paid reached the billed amount: the registrations are paid for."""

    amount_tzs: int
    paid_total_tzs: int
    overpaid_tzs: int = 0
    paid_at: datetime


@register
class BillExpired(_BillEvent):
    """The bill was not paid in full by its expiry: what it held is released."""

    amount_tzs: int
    paid_total_tzs: int
    expired_at: datetime


@register
class BillCancelled(_BillEvent):
    """The bill was cancelled (its registration was cancelled before paying)."""

    cancelled_at: datetime
    reason: str


class Discrepancy(BaseModel):
    """One difference between GePG's report of a day and the service's payments."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # unknown_payment: GePG reports it, the service did not know it (recorded now);
    # missing_at_gepg: the service knows it, GePG's report does not have it (flagged);
    # amount_mismatch: both have it with different amounts (flagged).
    kind: Literal["unknown_payment", "missing_at_gepg", "amount_mismatch"]
    bill_id: str | None = None
    control_number: str | None = None
    transaction_id: str | None = None
    payment_reference: str | None = None
    amount_tzs: int | None = None
    reported_amount_tzs: int | None = None


@register
class ReconciliationCompleted(IntegrationEvent):
    """GePG's report of one day's payments was compared with the service's."""

    domain = "payments"
    topic = PAYMENTS
    aggregate_field = "reconciliation_id"

    reconciliation_id: str
    day: date
    requested_at: datetime
    completed_at: datetime
    reported: int
    matched: int
    discrepancies: list[Discrepancy]
