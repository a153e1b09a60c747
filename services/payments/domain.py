"""Payments domain: bills, their payments, reconciliation with GePG. Pure (no I/O).

A ``Bill`` is what one registration (or an institution's nominees: one line each) owes
for an event's fee, in integer TZS. Its life: ``submitting`` (to GePG, retried with
backoff while GePG is away) → ``issued`` (a control number) → ``paid`` once what was paid
reaches the amount, or ``expired`` / ``cancelled``. Payments are recorded once each
(GePG's transaction id and payment reference are both keys): a re-sent notification
changes nothing. A payment that comes too late, or over the amount, is recorded and
flagged for the organiser, never lost.

The aggregates record their public events (``payments.v1``) and the payer's notices
(``payments.notices.v1``) as they change; the store writes both with the change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from shared.aggregate import Aggregate
from shared.contracts.payments import (
    BillCancelled,
    BillCreated,
    BillExpired,
    BillPaid,
    ControlNumberIssued,
    Discrepancy,
    PaymentReceived,
    ReconciliationCompleted,
)
from shared.contracts.payments_notices import (
    ControlNumberNotice,
    PaymentReceiptNotice,
    PaymentReminderNotice,
)
from shared.contracts.registration import EventDetails, ParticipantContact
from shared.errors import DomainError

BillStatus = Literal["submitting", "issued", "paid", "expired", "cancelled"]
BILL_STATUSES: tuple[str, ...] = ("submitting", "issued", "paid", "expired", "cancelled")
OPEN = ("submitting", "issued")
PayOption = Literal["full", "partial", "exact"]
BILL_NAMESPACE = uuid.UUID("6c7f3c52-3f0e-4f0e-9d1b-2a6f6b1d8e14")


def bill_id_for(registration_id: str) -> str:
    """One bill per registration, whatever the number of deliveries of its event."""
    return str(uuid.uuid5(BILL_NAMESPACE, f"registration:{registration_id}"))


def submission_backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """Exponential backoff between submissions to GePG: base, 2×base, … up to max."""
    return float(min(max_s, base_s * (2 ** max(0, attempts - 1))))


@dataclass(frozen=True)
class BillLine:
    """One registration a bill pays for (a group bill has one per nominee)."""

    registration_id: str
    reference: str
    amount_tzs: int
    category: str | None = None
    # The nominee's name on an institution's bill and invoice (erased on request).
    full_name: str | None = None


@dataclass(frozen=True)
class Payment:
    """One payment GePG reported for a bill."""

    id: str
    transaction_id: str
    payment_reference: str
    amount_tzs: int
    channel: str
    paid_at: datetime
    receipt_number: str
    psp_name: str | None = None
    psp_receipt: str | None = None
    flags: tuple[str, ...] = ()
    # callback (GePG's notification) or reconciliation (found only in its daily report)
    source: Literal["callback", "reconciliation"] = "callback"


@dataclass(frozen=True)
class ReportedPayment:
    """A payment as GePG reports it (notification or reconciliation row)."""

    bill_id: str
    control_number: str
    transaction_id: str
    payment_reference: str
    amount_tzs: int
    channel: str
    paid_at: datetime
    psp_name: str | None = None
    psp_receipt: str | None = None


@dataclass(kw_only=True)
class Bill(Aggregate):
    id: str
    event: EventDetails
    lines: list[BillLine]
    payer: ParticipantContact | None
    amount_tzs: int
    pay_option: PayOption
    created_at: datetime
    expires_at: datetime
    status: BillStatus = "submitting"
    currency: str = "TZS"
    category: str | None = None
    institution_code: str | None = None
    control_number: str | None = None
    issued_at: datetime | None = None
    # Submission to GePG: tries so far, when the next is due (epoch s), the last answer.
    submit_attempts: int = 0
    next_submit_at: float | None = 0.0
    last_error: str | None = None
    payments: list[Payment] = field(default_factory=list)
    closed_at: datetime | None = None
    cancel_reason: str | None = None
    # GePG still has to be told of the cancellation (it has a control number).
    cancel_at_gepg: bool = False
    reminded: bool = False
    invoice_number: str | None = None
    flags: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ derived

    @property
    def event_id(self) -> str:
        return self.event.event_id

    @property
    def registration_ids(self) -> list[str]:
        return [line.registration_id for line in self.lines]

    @property
    def reference(self) -> str:
        return self.lines[0].reference

    @property
    def paid_total_tzs(self) -> int:
        return sum(p.amount_tzs for p in self.payments)

    @property
    def outstanding_tzs(self) -> int:
        return max(0, self.amount_tzs - self.paid_total_tzs)

    def payment(self, payment_id: str) -> Payment | None:
        return next((p for p in self.payments if p.id == payment_id), None)

    # ------------------------------------------------------------------ changes

    @classmethod
    def open(
        cls,
        *,
        bill_id: str,
        event: EventDetails,
        lines: list[BillLine],
        payer: ParticipantContact,
        pay_option: PayOption,
        expires_at: datetime,
        now: datetime,
        category: str | None = None,
        institution_code: str | None = None,
    ) -> Bill:
        """A new bill, to be submitted to GePG at once."""
        amount = sum(line.amount_tzs for line in lines)
        if not lines or amount <= 0:
            raise DomainError("nothing_to_bill", "A bill needs at least one line with a fee")
        if expires_at <= now:
            raise DomainError("bill_already_expired", "The bill would expire before it is made")
        bill = cls(
            id=bill_id,
            event=event,
            lines=list(lines),
            payer=payer,
            amount_tzs=amount,
            pay_option=pay_option,
            created_at=now,
            expires_at=expires_at,
            category=category,
            institution_code=institution_code,
        )
        bill.record(
            BillCreated(
                bill_id=bill.id,
                event_id=bill.event_id,
                registration_ids=bill.registration_ids,
                amount_tzs=amount,
                pay_option=pay_option,
                category=category,
                institution_code=institution_code,
                expires_at=expires_at,
                created_at=now,
            )
        )
        return bill

    def submission_failed(self, *, error: str, retry_at: float) -> None:
        """GePG did not take the bill (down, busy, an error): try again at ``retry_at``."""
        self.submit_attempts += 1
        self.last_error = error
        self.next_submit_at = retry_at

    def submission_accepted(self, *, recheck_at: float) -> None:
        """GePG queued the bill (7101); its control number comes by callback. If none
        has come by ``recheck_at`` the bill is submitted again (GePG answers a known
        BillId with its control number)."""
        self.submit_attempts += 1
        self.last_error = None
        self.next_submit_at = recheck_at

    def issue_control_number(self, control_number: str, now: datetime) -> bool:
        """GePG's control number for the bill; False if it has one already (a re-sent
        callback) or it is closed."""
        if self.status != "submitting":
            return False
        self.status = "issued"
        self.control_number = control_number
        self.issued_at = now
        self.next_submit_at = None
        self.record(
            ControlNumberIssued(
                bill_id=self.id,
                event_id=self.event_id,
                registration_ids=self.registration_ids,
                control_number=control_number,
                amount_tzs=self.amount_tzs,
                expires_at=self.expires_at,
                issued_at=now,
            )
        )
        self._notify(ControlNumberNotice)
        return True

    def knows(self, reported: ReportedPayment) -> bool:
        return any(
            p.transaction_id == reported.transaction_id
            or p.payment_reference == reported.payment_reference
            for p in self.payments
        )

    def receive_payment(
        self,
        reported: ReportedPayment,
        now: datetime,
        *,
        source: Literal["callback", "reconciliation"] = "callback",
    ) -> Payment | None:
        """Record a payment once (None if it is known by transaction id or payment
        reference); the bill is paid once the payments reach its amount."""
        if self.knows(reported):
            return None
        if reported.amount_tzs <= 0:
            raise DomainError("invalid_amount", "A payment amount must be positive")
        flags: list[str] = []
        after = self.paid_total_tzs + reported.amount_tzs
        if self.status == "expired" or (self.status in OPEN and reported.paid_at > self.expires_at):
            flags.append("after_expiry")
        if self.status == "cancelled":
            flags.append("after_cancellation")
        if after > self.amount_tzs:
            flags.append("overpaid")
        number = f"{self.control_number or self.id[:8]}-{len(self.payments) + 1}"
        payment = Payment(
            id=f"{self.id}:{len(self.payments) + 1}",
            transaction_id=reported.transaction_id,
            payment_reference=reported.payment_reference,
            amount_tzs=reported.amount_tzs,
            channel=reported.channel,
            paid_at=reported.paid_at,
            receipt_number=number,
            psp_name=reported.psp_name,
            psp_receipt=reported.psp_receipt,
            flags=tuple(flags),
            source=source,
        )
        self.payments = [*self.payments, payment]
        for flag in flags:
            if flag not in self.flags:
                self.flags = [*self.flags, flag]
        if self.control_number is None:
            self.control_number = reported.control_number
        self.record(
            PaymentReceived(
                bill_id=self.id,
                event_id=self.event_id,
                registration_ids=self.registration_ids,
                payment_id=payment.id,
                control_number=reported.control_number,
                amount_tzs=payment.amount_tzs,
                channel=payment.channel,
                psp_name=payment.psp_name,
                psp_receipt=payment.psp_receipt,
                paid_at=payment.paid_at,
                paid_total_tzs=self.paid_total_tzs,
                outstanding_tzs=self.outstanding_tzs,
                flags=list(flags),  # type: ignore[arg-type]
            )
        )
        became_paid = self.status in OPEN and self.paid_total_tzs >= self.amount_tzs
        if became_paid:
            self.status = "paid"
            self.closed_at = now
            self.next_submit_at = None
            self.record(
                BillPaid(
                    bill_id=self.id,
                    event_id=self.event_id,
                    registration_ids=self.registration_ids,
                    amount_tzs=self.amount_tzs,
                    paid_total_tzs=self.paid_total_tzs,
                    overpaid_tzs=max(0, self.paid_total_tzs - self.amount_tzs),
                    paid_at=payment.paid_at,
                )
            )
        self._notify(
            PaymentReceiptNotice,
            receipt_number=payment.receipt_number,
            paid_tzs=payment.amount_tzs,
            paid_total_tzs=self.paid_total_tzs,
            channel=payment.channel,
            psp_receipt=payment.psp_receipt,
            paid_at=payment.paid_at,
            bill_paid=self.status == "paid",
            flags=list(flags),
        )
        return payment

    def expire(self, now: datetime) -> bool:
        """Past its expiry and not paid in full: expired (what it held is released)."""
        if self.status not in OPEN or now < self.expires_at:
            return False
        self.status = "expired"
        self.closed_at = now
        self.next_submit_at = None
        self.record(
            BillExpired(
                bill_id=self.id,
                event_id=self.event_id,
                registration_ids=self.registration_ids,
                amount_tzs=self.amount_tzs,
                paid_total_tzs=self.paid_total_tzs,
                expired_at=now,
            )
        )
        return True

    def cancel(self, now: datetime, reason: str) -> bool:
        """The registration was cancelled before paying: so is its bill (GePG is told)."""
        if self.status not in OPEN:
            return False
        self.cancel_at_gepg = self.status == "issued" or self.submit_attempts > 0
        self.status = "cancelled"
        self.closed_at = now
        self.cancel_reason = reason
        self.next_submit_at = None
        self.record(
            BillCancelled(
                bill_id=self.id,
                event_id=self.event_id,
                registration_ids=self.registration_ids,
                cancelled_at=now,
                reason=reason,
            )
        )
        return True

    def cancelled_at_gepg(self) -> None:
        self.cancel_at_gepg = False

    def remind(self, now: datetime, before: timedelta) -> bool:
        """Once, ``before`` the expiry of a bill with a control number still owing."""
        if self.status != "issued" or self.reminded or now < self.expires_at - before:
            return False
        self.reminded = True
        self._notify(PaymentReminderNotice)
        return True

    def erase_personal_data(self, registration_id: str) -> bool:
        """PDPA erasure of one registration: its name on the bill and, if it is the
        payer, the payer's contact. The amounts and payments stay (the books)."""
        changed = False
        lines = []
        for line in self.lines:
            if line.registration_id == registration_id and line.full_name is not None:
                line = replace(line, full_name=None)
                changed = True
            lines.append(line)
        self.lines = lines
        if self.payer is not None and self.lines[0].registration_id == registration_id:
            self.payer = None
            changed = True
        return changed

    @property
    def is_group(self) -> bool:
        """An institution's bill for its nominees, paid by its contact person (a
        registration's own bill has the id derived from that registration)."""
        return self.id != bill_id_for(self.lines[0].registration_id)

    def erase_institution_contact(self, institution_code: str, email: str) -> bool:
        """PDPA erasure of an institution's contact person: on the institution's group
        bills they pay, the payer's contact goes (no more messages to them); the amounts,
        the nominees' lines and the payments stay (the books)."""
        if (
            not self.is_group
            or self.institution_code != institution_code
            or self.payer is None
            or self.payer.email.casefold() != email.casefold()
        ):
            return False
        self.payer = None
        return True

    def _notify(self, cls: type, **extra: Any) -> None:
        if self.payer is None or self.control_number is None:
            return  # erased: nobody to write to
        self.record(
            cls(
                bill_id=self.id,
                registration_id=self.lines[0].registration_id,
                reference=self.reference,
                event=self.event,
                payer=self.payer,
                control_number=self.control_number,
                amount_tzs=self.amount_tzs,
                outstanding_tzs=self.outstanding_tzs,
                expires_at=self.expires_at,
                **extra,
            )
        )


# --------------------------------------------------------------------------- reconciliation


@dataclass(frozen=True)
class KnownPayment:
    bill_id: str
    control_number: str | None
    payment: Payment


def compare(
    reported: list[ReportedPayment], known: list[KnownPayment]
) -> tuple[int, list[Discrepancy], list[ReportedPayment]]:
    """GePG's report of a day against the service's payments of that day: how many
    match, the discrepancies, and the reported payments the service did not know."""
    by_trx = {k.payment.transaction_id: k for k in known}
    by_ref = {k.payment.payment_reference: k for k in known}
    matched = 0
    seen: set[str] = set()
    discrepancies: list[Discrepancy] = []
    unknown: list[ReportedPayment] = []
    for row in reported:
        k = by_trx.get(row.transaction_id) or by_ref.get(row.payment_reference)
        if k is None:
            unknown.append(row)
            discrepancies.append(
                Discrepancy(
                    kind="unknown_payment",
                    bill_id=row.bill_id,
                    control_number=row.control_number,
                    transaction_id=row.transaction_id,
                    payment_reference=row.payment_reference,
                    reported_amount_tzs=row.amount_tzs,
                )
            )
            continue
        seen.add(k.payment.id)
        if k.payment.amount_tzs != row.amount_tzs:
            discrepancies.append(
                Discrepancy(
                    kind="amount_mismatch",
                    bill_id=k.bill_id,
                    control_number=k.control_number,
                    transaction_id=row.transaction_id,
                    payment_reference=row.payment_reference,
                    amount_tzs=k.payment.amount_tzs,
                    reported_amount_tzs=row.amount_tzs,
                )
            )
        else:
            matched += 1
    for k in known:
        if k.payment.id not in seen:
            discrepancies.append(
                Discrepancy(
                    kind="missing_at_gepg",
                    bill_id=k.bill_id,
                    control_number=k.control_number,
                    transaction_id=k.payment.transaction_id,
                    payment_reference=k.payment.payment_reference,
                    amount_tzs=k.payment.amount_tzs,
                )
            )
    return matched, discrepancies, unknown


@dataclass(kw_only=True)
class Reconciliation(Aggregate):
    """GePG's report of one day's payments, asked for and compared (id = the day)."""

    id: str
    day: date
    request_id: int
    requested_at: datetime
    status: Literal["requested", "completed"] = "requested"
    completed_at: datetime | None = None
    reported: int = 0
    matched: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)
    attempts: int = 0

    def complete(
        self, reported: list[ReportedPayment], known: list[KnownPayment], now: datetime
    ) -> list[ReportedPayment]:
        """Compare; returns GePG's payments the service did not know (to record)."""
        matched, discrepancies, unknown = compare(reported, known)
        self.status = "completed"
        self.completed_at = now
        self.reported = len(reported)
        self.matched = matched
        self.discrepancies = discrepancies
        self.record(
            ReconciliationCompleted(
                reconciliation_id=self.id,
                day=self.day,
                requested_at=self.requested_at,
                completed_at=now,
                reported=len(reported),
                matched=matched,
                discrepancies=discrepancies,
            )
        )
        return unknown


def request_id_for(day: date, attempt: int) -> int:
    """GePG's SpReconcReqId: an integer we choose, one per (day, attempt)."""
    return int(day.strftime("%Y%m%d")) * 100 + attempt % 100


def invoice_number(year: int, sequence: int) -> str:
    """A proforma invoice's number: sequential per year, no gaps (``PF-2026-000001``)."""
    return f"PF-{year}-{sequence:06d}"
