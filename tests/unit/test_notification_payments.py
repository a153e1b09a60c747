"""Notification's messages for the payers' notices (issue 14): the control number, the
reminder and the receipt, by email and SMS in the payer's language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.notification import messages
from services.notification.domain import payment_intents
from shared.contracts.payments_notices import ControlNumberNotice, PaymentReceiptNotice
from shared.envelope import parse, wrap
from tests.unit.test_payments_domain import T0, event_details, payer


def received(notice):
    m = wrap(notice, "payments")
    return parse(m.headers(), m.value(), m.key.encode())


def base(**extra):
    return dict(
        bill_id="bill-1", registration_id="reg-1", reference="MK-1", event=event_details(),
        payer=payer(), control_number="991080222529", amount_tzs=400_000,
        outstanding_tzs=400_000, expires_at=T0 + timedelta(days=7), **extra,
    )  # fmt: skip


def test_the_control_number_goes_by_email_and_sms_in_the_payers_language():
    intents = payment_intents(received(ControlNumberNotice(**base())), sms_enabled=True)
    assert [(i.channel, i.template, i.language) for i in intents] == [
        ("email", "payment_control_number", "sw"),
        ("sms", "payment_control_number", "sw"),
    ]
    sms = messages.render_sms("payment_control_number", "sw", intents[1].context)
    assert "991080222529" in sms and "400,000" in sms and "08/12/2026" in sms
    assert messages.sms_segments(sms) == 1
    subject, text, _ = messages.render_email(
        "payment_control_number", "en", {**intents[0].context, "language": "en"}
    )
    assert "991080222529" in subject and "M-Pesa" in text


def test_the_receipt_says_paid_in_full_or_what_is_left():
    notice = PaymentReceiptNotice(
        **base(), receipt_number="991080222529-1", paid_tzs=400_000, paid_total_tzs=400_000,
        channel="MOBILE", paid_at=datetime(2026, 12, 2, 9, tzinfo=UTC), bill_paid=True,
    )  # fmt: skip
    email = payment_intents(received(notice), sms_enabled=False)[0]
    _, text, _ = messages.render_email("payment_receipt", "en", {**email.context, "language": "en"})
    assert "991080222529-1" in text and "paid in full" in text
