"""Pure registration rules: phone and email forms, tickets, event changes, check-in days,
participant changes and CSV cells."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.registration.domain import (
    DomainError,
    EventChange,
    RegistrationChange,
    TicketSigner,
    apply_event_change,
    check_can_check_in,
    csv_cell,
    local_day,
    new_reference,
    normalise_email,
    normalise_phone,
    tokens_match,
)


@pytest.mark.parametrize(
    "raw", ["0712 345 678", "0712345678", "255712345678", "+255 712 345 678", "(+255) 712-345-678"]
)
def test_tanzanian_phone_forms_become_e164(raw: str) -> None:
    assert normalise_phone(raw) == "+255712345678"


def test_foreign_phone_in_e164_and_nonsense_refused() -> None:
    assert normalise_phone("+254 712 345 678") == "+254712345678"
    for bad in ("12345", "0712 34", "phone", "+999 1234"):
        with pytest.raises(ValueError):
            normalise_phone(bad)


def test_email_is_normalised() -> None:
    assert normalise_email("  Asha.Juma@EGA.GO.TZ ") == "asha.juma@ega.go.tz"
    with pytest.raises(ValueError):
        normalise_email("asha@")


def test_references_are_short_readable_and_distinct() -> None:
    refs = {new_reference() for _ in range(2000)}
    assert len(refs) == 2000
    assert all(len(r) == 14 and not set(r[3:]) & set("01ILOU") for r in refs)


def test_tickets_verify_and_forgeries_do_not() -> None:
    signer = TicketSigner(b"s" * 32)
    registration_id = str(uuid.uuid4())
    ticket = signer.sign(registration_id)
    assert signer.verify(ticket) == registration_id
    # A scanner may hand it over in lower case or with spaces around it.
    assert signer.verify(f"  {ticket.lower()} ") == registration_id
    assert TicketSigner(b"t" * 32).verify(ticket) is None  # another secret
    other = str(uuid.uuid4())
    forged = ticket[:3] + signer.sign(other)[3:29] + ticket[29:]  # another id, this tag
    assert signer.verify(forged) is None
    for garbage in ("garbage", "MK1", "MK1!!!!", ticket[:-2], ticket + "AB", "XX" + ticket[2:]):
        assert signer.verify(garbage) is None


def test_tickets_fit_a_small_alphanumeric_qr_code() -> None:
    """45 characters of QR's alphanumeric set: a version 3 code at error level M."""
    import segno

    ticket = TicketSigner(secrets.token_bytes(32)).sign(str(uuid.uuid4()))
    assert len(ticket) == 45
    assert set(ticket) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    qr = segno.make(ticket, error="m")
    assert (qr.version, qr.mode) == (3, "alphanumeric")


def test_token_comparison_refuses_unknown_and_wrong() -> None:
    from services.registration.domain import hash_token

    stored = hash_token("right")
    assert tokens_match(hash_token("right"), stored)
    assert not tokens_match(hash_token("wrong"), stored)
    assert not tokens_match(hash_token("right"), None)


EVENT = {
    "_id": "e",
    "state": "published",
    "capacity": 10,
    "seats_taken": 4,
    "starts_at": "2025-02-11T05:00:00.000000Z",
    "ends_at": "2025-02-13T14:00:00.000000Z",
}


def test_event_change_keeps_only_real_changes_and_guards_capacity_and_state() -> None:
    assert apply_event_change(EVENT, EventChange(capacity=10)) == {}
    assert apply_event_change(EVENT, EventChange(capacity=12)) == {"capacity": 12}
    with pytest.raises(DomainError) as err:
        apply_event_change(EVENT, EventChange(capacity=3))
    assert err.value.code == "capacity_below_confirmed"
    with pytest.raises(DomainError) as err:
        apply_event_change({**EVENT, "state": "cancelled"}, EventChange(state="published"))
    assert err.value.code == "invalid_state_change"
    with pytest.raises(DomainError) as err:
        apply_event_change(EVENT, EventChange(ends_at=datetime(2025, 1, 1, tzinfo=UTC)))
    assert err.value.code == "invalid_dates"
    with pytest.raises(ValidationError):
        EventChange.model_validate({"id": "other"})


def test_check_in_day_is_the_venue_date() -> None:
    # 22:30 UTC on the 10th is 01:30 on the 11th in Arusha.
    assert local_day(datetime(2025, 2, 10, 22, 30, tzinfo=UTC)) == "2025-02-11"
    registration = {"status": "confirmed", "checkins": {}}
    moment = datetime(2025, 2, 10, 22, 30, tzinfo=UTC)
    assert check_can_check_in(registration, EVENT, moment) == "2025-02-11"
    with pytest.raises(DomainError) as err:
        check_can_check_in({"status": "confirmed", "checkins": {"2025-02-11": "t"}}, EVENT, moment)
    assert err.value.code == "already_checked_in" and err.value.details["checked_in_at"] == "t"
    with pytest.raises(DomainError) as err:
        check_can_check_in(registration, EVENT, datetime(2025, 2, 14, 9, tzinfo=UTC))
    assert err.value.code == "not_an_event_day"
    with pytest.raises(DomainError) as err:
        check_can_check_in({"status": "pending_approval"}, EVENT, moment)
    assert err.value.code == "registration_pending_approval"


def test_participant_changes_are_limited() -> None:
    change = RegistrationChange.model_validate({"phone": "0754 111 222", "language": "en"})
    assert change.phone == "+255754111222"
    for bad in ({}, {"email": "x@y.tz"}, {"language": "fr"}, {"phone": None}, {"position": ""}):
        with pytest.raises(ValidationError):
            RegistrationChange.model_validate(bad)


def test_csv_cells_neutralise_formulas_but_keep_phone_numbers() -> None:
    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("+255712345678") == "+255712345678"
    assert csv_cell(["braille", "other"]) == "braille;other"
    assert csv_cell(None) == ""
