"""The bill aggregate and the reconciliation comparison (pure, fixed times)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.payments.domain import (
    Bill,
    BillLine,
    KnownPayment,
    Payment,
    ReportedPayment,
    bill_id_for,
    compare,
    submission_backoff_s,
)
from shared.contracts.payments import BillExpired, BillPaid, ControlNumberIssued, PaymentReceived
from shared.contracts.payments_notices import ControlNumberNotice, PaymentReceiptNotice
from shared.contracts.registration import EventDetails, ParticipantContact

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)


def event_details() -> EventDetails:
    return EventDetails(
        event_id="ev-1",
        code="EGOV26",
        title_sw="Mkutano wa Serikali Mtandao",
        title_en="e-Government Conference",
        venue="AICC",
        city="Arusha",
        starts_at=T0 + timedelta(days=30),
        ends_at=T0 + timedelta(days=32),
    )


def payer() -> ParticipantContact:
    return ParticipantContact(
        full_name="Asha Juma", email="asha@example.go.tz", phone="+255712345678",
        language="sw", institution="e-GA",
    )  # fmt: skip


def new_bill(now: datetime = T0, amount: int = 400_000, option: str = "partial") -> Bill:
    bill = Bill.open(
        bill_id=bill_id_for("reg-1"),
        event=event_details(),
        lines=[BillLine("reg-1", "MK-1", amount, "ict", "Asha Juma")],
        payer=payer(),
        pay_option=option,  # type: ignore[arg-type]
        expires_at=now + timedelta(days=7),
        now=now,
        category="ict",
    )
    return bill


def reported(trx: str, amount: int, at: datetime = T0, ref: str | None = None) -> ReportedPayment:
    return ReportedPayment(
        bill_id=bill_id_for("reg-1"), control_number="991000000001", transaction_id=trx,
        payment_reference=ref or f"ref-{trx}", amount_tzs=amount, channel="MOBILE", paid_at=at,
    )  # fmt: skip


def issued() -> Bill:
    bill = new_bill()
    bill.take_events()
    assert bill.issue_control_number("991000000001", T0)
    return bill


def test_one_bill_id_per_registration():
    assert bill_id_for("reg-1") == bill_id_for("reg-1") != bill_id_for("reg-2")


def test_control_number_is_issued_once_with_the_payers_notice():
    bill = issued()
    kinds = [type(e) for e in bill.take_events()]
    assert kinds == [ControlNumberIssued, ControlNumberNotice]
    assert not bill.issue_control_number("991000000002", T0)  # a re-sent callback
    assert bill.control_number == "991000000001" and not bill.events


def test_partial_payments_add_up_and_a_duplicate_changes_nothing():
    bill = issued()
    bill.take_events()
    assert bill.receive_payment(reported("T1", 150_000), T0) is not None
    assert bill.status == "issued" and bill.outstanding_tzs == 250_000
    assert [type(e) for e in bill.take_events()] == [PaymentReceived, PaymentReceiptNotice]
    # The same transaction again, or the same payment reference: not applied.
    assert bill.receive_payment(reported("T1", 150_000), T0) is None
    assert bill.receive_payment(reported("T9", 150_000, ref="ref-T1"), T0) is None
    assert bill.paid_total_tzs == 150_000 and not bill.events
    bill.receive_payment(reported("T2", 250_000), T0)
    assert bill.status == "paid"
    assert BillPaid in [type(e) for e in bill.events]


def test_over_payment_and_payment_after_expiry_are_recorded_and_flagged():
    bill = issued()
    payment = bill.receive_payment(reported("T1", 500_000), T0)
    assert payment is not None and payment.flags == ("overpaid",)
    assert bill.status == "paid" and bill.flags == ["overpaid"]
    late = issued()
    assert late.expire(T0 + timedelta(days=8))
    assert [type(e) for e in late.events][-1] is BillExpired
    p = late.receive_payment(
        reported("T5", 400_000, at=T0 + timedelta(days=9)), T0 + timedelta(days=9)
    )
    assert p is not None and "after_expiry" in p.flags
    assert late.status == "expired" and late.paid_total_tzs == 400_000


def test_expiry_reminder_and_cancel():
    bill = issued()
    assert not bill.expire(T0 + timedelta(days=6))
    assert bill.remind(T0 + timedelta(days=6, hours=1), timedelta(hours=24))
    assert not bill.remind(T0 + timedelta(days=6, hours=2), timedelta(hours=24))
    assert bill.cancel(T0, "registration_cancelled") and bill.cancel_at_gepg
    assert not bill.expire(T0 + timedelta(days=8))


def test_backoff_grows_to_a_bound():
    assert [submission_backoff_s(n, 2, 30) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 16, 30]


def test_reconciliation_finds_unknown_missing_and_mismatched_payments():
    known = [
        KnownPayment("b1", "99", Payment("p1", "T1", "R1", 100, "MOBILE", T0, "r1")),
        KnownPayment("b2", "98", Payment("p2", "T2", "R2", 200, "MOBILE", T0, "r2")),
        KnownPayment("b3", "97", Payment("p3", "T3", "R3", 300, "MOBILE", T0, "r3")),
    ]
    rows = [reported("T1", 100, ref="R1"), reported("T3", 333, ref="R3"), reported("T4", 50)]
    matched, discrepancies, unknown = compare(rows, known)
    assert matched == 1
    assert sorted(d.kind for d in discrepancies) == [
        "amount_mismatch", "missing_at_gepg", "unknown_payment",
    ]  # fmt: skip
    assert [u.transaction_id for u in unknown] == ["T4"]
    assert date(2026, 12, 1) == T0.date()
