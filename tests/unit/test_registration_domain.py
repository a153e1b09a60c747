"""Pure registration rules: phone and email forms, tickets, the Event and Registration
aggregates (event changes, check-in days, participant changes) and CSV cells."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.registration.domain import (
    DomainError,
    Event,
    EventChange,
    EventSpec,
    Registration,
    RegistrationChange,
    RegistrationRequest,
    TicketSigner,
    csv_cell,
    csv_row,
    local_day,
    new_reference,
    normalise_email,
    normalise_phone,
    tokens_match,
)
from shared.topics import REGISTRATION, REGISTRATION_NOTICES


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
    assert ticket.startswith("MK2")
    assert signer.verify(ticket) == registration_id
    # A scanner may add whitespace around it; that is all it may change.
    assert signer.verify(f"  {ticket}\r\n") == registration_id
    assert TicketSigner(b"t" * 32).verify(ticket) is None  # another secret
    other = str(uuid.uuid4())
    forged = ticket[:3] + signer.sign(other)[3:29] + ticket[29:]  # another id, this signature
    assert signer.verify(forged) is None
    for garbage in ("garbage", "MK2", "MK2!!!!", ticket[:-2], ticket + "AB", "XX" + ticket[2:]):
        assert signer.verify(garbage) is None


def test_tickets_verify_with_the_public_key_alone() -> None:
    """What a registrar's phone does offline: Ed25519 over "MK2" + the 16-byte id."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    signer = TicketSigner(secrets.token_bytes(32))
    registration_id = str(uuid.uuid4())
    data = base64.b32decode(signer.sign(registration_id)[3:])
    public = Ed25519PublicKey.from_public_bytes(signer.public_key())
    public.verify(data[16:], b"MK2" + data[:16])  # raises if not genuine
    assert str(uuid.UUID(bytes=data[:16])) == registration_id


def test_hmac_tickets_issued_before_stay_valid() -> None:
    signer = TicketSigner(b"s" * 32)
    registration_id = str(uuid.uuid4())
    old = signer.sign_hmac(registration_id)
    assert old.startswith("MK1") and len(old) == 45
    assert signer.verify(old) == registration_id
    assert TicketSigner(b"t" * 32).verify(old) is None
    forged = old[:3] + signer.sign_hmac(str(uuid.uuid4()))[3:29] + old[29:]
    assert signer.verify(forged) is None


def test_a_ticket_has_exactly_one_valid_spelling() -> None:
    """Every single-character alteration of a genuine ticket (new and old kind) is
    refused, the last one included (base32 of the 26 bytes of an old ticket leaves two
    bits of it unused), and so are its lower-case and padded spellings."""
    signer = TicketSigner(b"s" * 32)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" + "abcdefghijklmnopqrstuvwxyz" + "0189=-_ "
    for sign in [signer.sign] * 3 + [signer.sign_hmac] * 10:
        registration_id = str(uuid.uuid4())
        ticket = sign(registration_id)
        assert signer.verify(ticket) == registration_id
        altered = {
            ticket[:i] + c + ticket[i + 1 :]
            for i in range(len(ticket))
            for c in alphabet
            if c != ticket[i]
        }
        assert len(altered) == len(ticket) * (len(alphabet) - 1)
        accepted = [t for t in altered if signer.verify(t) is not None]
        assert accepted == [], accepted[:3]
        for variant in (ticket.lower(), ticket[:3] + ticket[3:].lower(), ticket + "======"):
            assert signer.verify(variant) is None, variant


def test_tickets_fit_an_alphanumeric_qr_code() -> None:
    """131 characters of QR's alphanumeric set: a version 6 code at error level M (an
    Ed25519 signature is 64 bytes; the HMAC tickets before were version 3)."""
    import segno

    ticket = TicketSigner(secrets.token_bytes(32)).sign(str(uuid.uuid4()))
    assert len(ticket) == 131
    assert set(ticket) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    qr = segno.make(ticket, error="m")
    assert (qr.version, qr.mode) == (6, "alphanumeric")


def test_token_comparison_refuses_unknown_and_wrong() -> None:
    from services.registration.domain import hash_token

    stored = hash_token("right")
    assert tokens_match(hash_token("right"), stored)
    assert not tokens_match(hash_token("wrong"), stored)
    assert not tokens_match(hash_token("right"), None)


NOW = datetime(2025, 1, 10, 7, 0, tzinfo=UTC)
SIGNER = TicketSigner(b"s" * 32)


def event(**overrides) -> Event:
    spec = EventSpec(
        id="seminar-1",
        code="E1",
        title_sw="Semina",
        title_en="Seminar",
        venue="AICC",
        city="Arusha",
        starts_at=datetime(2025, 2, 11, 5, tzinfo=UTC),
        ends_at=datetime(2025, 2, 13, 14, tzinfo=UTC),
        capacity=10,
        state="published",
    )
    created = Event.create(spec, NOW)
    created.take_events()
    created.seats_taken = 4
    for name, value in overrides.items():
        setattr(created, name, value)
    return created


def registration(the_event: Event, status: str = "confirmed") -> Registration:
    request = RegistrationRequest.model_validate(
        {
            "full_name": "Asha Juma",
            "email": "asha@example.go.tz",
            "phone": "0712 345 678",
            "institution": "e-GA",
            "position": "ICT Officer",
            "cadre": "ict_officer",
            "consent": {"accepted": True},
        }
    )
    created = Registration.register(
        registration_id=str(uuid.uuid4()),
        reference=new_reference(),
        event=the_event,
        request=request,
        status=status,
        waitlist_position=1 if status == "waitlisted" else None,
        manage_token_hash="h",
        notice_version="2025-01",
        signer=SIGNER,
        now=NOW,
    )
    created.take_events()
    return created


def test_event_change_keeps_only_real_changes_and_guards_capacity_and_state() -> None:
    assert event().change(EventChange(capacity=10), NOW) == []
    changed = event()
    assert changed.change(EventChange(capacity=12), NOW) == ["capacity"]
    [updated] = changed.take_events()
    assert updated.changed_fields == ["capacity"] and updated.capacity == 12
    with pytest.raises(DomainError) as err:
        event().change(EventChange(capacity=3), NOW)
    assert err.value.code == "capacity_below_confirmed"
    with pytest.raises(DomainError) as err:
        event(state="cancelled").change(EventChange(state="published"), NOW)
    assert err.value.code == "invalid_state_change"
    with pytest.raises(DomainError) as err:
        event().change(EventChange(ends_at=datetime(2025, 1, 1, tzinfo=UTC)), NOW)
    assert err.value.code == "invalid_dates"
    with pytest.raises(ValidationError):
        EventChange.model_validate({"id": "other"})
    # A refused change changes nothing and records nothing.
    kept = event()
    with pytest.raises(DomainError):
        kept.change(EventChange(venue="JNICC", capacity=1), NOW)
    assert kept.venue == "AICC" and kept.events == []


def test_event_state_changes_record_what_the_stream_announces() -> None:
    draft = event(state="draft")
    draft.change(EventChange(state="published"), NOW)
    assert [type(e).__name__ for e in draft.take_events()] == ["EventPublished"]
    cancelled = event()
    cancelled.change(EventChange(state="cancelled", cancellation_reason="Floods"), NOW)
    [announced] = cancelled.take_events()
    assert type(announced).__name__ == "EventCancelled" and announced.reason == "Floods"


def test_check_in_day_is_the_venue_date() -> None:
    # 22:30 UTC on the 10th is 01:30 on the 11th in Arusha.
    assert local_day(datetime(2025, 2, 10, 22, 30, tzinfo=UTC)) == "2025-02-11"
    the_event = event()
    moment = datetime(2025, 2, 10, 22, 30, tzinfo=UTC)
    confirmed = registration(the_event)
    assert confirmed.check_in(the_event, moment) == "2025-02-11"
    [checked_in, notice] = confirmed.take_events()
    assert checked_in.day == "2025-02-11" and notice.day == "2025-02-11"
    with pytest.raises(DomainError) as err:
        confirmed.check_in(the_event, moment)
    assert err.value.code == "already_checked_in"
    assert err.value.details["checked_in_at"] == "2025-02-10T22:30:00.000000Z"
    with pytest.raises(DomainError) as err:
        registration(the_event).check_in(the_event, datetime(2025, 2, 14, 9, tzinfo=UTC))
    assert err.value.code == "not_an_event_day"
    with pytest.raises(DomainError) as err:
        registration(the_event, "pending_approval").check_in(the_event, moment)
    assert err.value.code == "registration_pending_approval"


def test_registration_lifecycle_rules() -> None:
    the_event = event()
    waiting = registration(the_event, "waitlisted")
    waiting.promote(the_event, SIGNER, NOW)
    [promoted, notice] = waiting.take_events()
    assert waiting.status == "confirmed" and promoted.status == "confirmed"
    assert SIGNER.verify(notice.ticket) == waiting.id
    assert waiting.cancel(the_event, by="participant", reason=None, now=NOW) == "confirmed"
    with pytest.raises(DomainError) as err:
        waiting.cancel(the_event, by="participant", reason=None, now=NOW)
    assert err.value.code == "registration_cancelled"
    with pytest.raises(DomainError) as err:
        waiting.approve(
            the_event, by="o", seat=True, waitlist_position=None, signer=SIGNER, now=NOW
        )
    assert err.value.code == "not_pending_approval"
    assert waiting.erase("retention", NOW) and not waiting.erase("retention", NOW)
    assert waiting.full_name == "[erased]" and waiting.manage_token_hash is None


def test_participant_changes_are_limited() -> None:
    change = RegistrationChange.model_validate({"phone": "0754 111 222", "language": "en"})
    assert change.phone == "+255754111222"
    for bad in ({}, {"email": "x@y.tz"}, {"language": "fr"}, {"phone": None}, {"position": ""}):
        with pytest.raises(ValidationError):
            RegistrationChange.model_validate(bad)


def test_csv_rows_follow_the_columns() -> None:
    row = csv_row(registration(event()))
    assert row[:3] == [row[0], "confirmed", "Asha Juma"] and row[4] == "+255712345678"
    assert row[13] == ""  # no check-in days yet


def test_csv_cells_neutralise_formulas_but_keep_phone_numbers() -> None:
    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("+255712345678") == "+255712345678"
    assert csv_cell(["braille", "other"]) == "braille;other"
    assert csv_cell(None) == ""


def test_text_fields_refuse_control_characters_and_titles_are_one_line() -> None:
    from pydantic import ValidationError

    from services.registration.domain import EventChange, RegistrationRequest, csv_cell

    for title in ("Mkutano\r\nBcc: x@example.org", "Mkutano\u2028wa", "Mku\x00tano"):
        with pytest.raises(ValidationError) as refused:
            EventChange(title_en=title)
        problem = refused.value.errors()[0]
        assert problem["loc"] == ("title_en",)
        assert problem["msg"] in ("must be a single line", "must not contain control characters")
    base = {
        "full_name": "Rehema Mushi",
        "email": "rehema@example.go.tz",
        "phone": "0754123456",
        "institution": "Wizara ya Fedha",
        "position": "Afisa TEHAMA",
        "cadre": "ict_officer",
        "consent": {"accepted": True},
    }
    with pytest.raises(ValidationError) as refused:
        RegistrationRequest.model_validate({**base, "full_name": "Rehema\x00 Mushi"})
    assert refused.value.errors()[0]["loc"] == ("full_name",)
    RegistrationRequest.model_validate({**base, "dietary_needs": "no nuts\nno dairy"})
    assert "\x00" not in csv_cell("stored\x00before")


# -- what each change records on the public stream and on the private notices ---------

CONTACT = {"full_name", "email", "phone"}


def _recorded(events) -> list[tuple[str, str]]:
    return [(e.topic, type(e).__name__) for e in events]


def _check_public_and_notice(events) -> None:
    """Every public registration event is followed by its notice for the same
    registration; the public one has no ticket and no contact, the notice has both."""
    public = [e for e in events if e.topic == REGISTRATION]
    notices = [e for e in events if e.topic == REGISTRATION_NOTICES]
    for e in public:
        data = e.model_dump(mode="json")
        assert "ticket" not in data and "self_service_url" not in data, type(e).__name__
        assert not CONTACT & set(data["participant"]), type(e).__name__
        assert set(data["participant"]) == {
            "institution",
            "cadre",
            "language",
            "category",
            "institution_code",
        }
    for n in notices:
        assert n.participant.email == "asha@example.go.tz" and n.participant.full_name
        assert n.participant.phone == "+255712345678"
    assert [e.registration_id for e in notices] and {e.registration_id for e in notices} == {
        e.registration_id for e in events
    }


def test_every_change_records_its_public_event_and_its_notice() -> None:
    the_event = event()
    request = RegistrationRequest.model_validate(
        {
            "full_name": "Asha Juma",
            "email": "asha@example.go.tz",
            "phone": "0712 345 678",
            "institution": "e-GA",
            "position": "ICT Officer",
            "cadre": "ict_officer",
            "consent": {"accepted": True},
        }
    )
    created = Registration.register(
        registration_id=str(uuid.uuid4()),
        reference=new_reference(),
        event=the_event,
        request=request,
        status="waitlisted",
        waitlist_position=3,
        manage_token_hash="h",
        notice_version="2025-01",
        signer=SIGNER,
        now=NOW,
    )
    events = created.take_events()
    assert _recorded(events) == [
        (REGISTRATION, "ParticipantRegisteredV2"),
        (REGISTRATION_NOTICES, "ParticipantRegisteredNotice"),
        (REGISTRATION, "ParticipantWaitlistedV2"),
        (REGISTRATION_NOTICES, "ParticipantWaitlistedNotice"),
    ]
    _check_public_and_notice(events)
    assert events[0].ce_type() == "tz.go.ega.registration.ParticipantRegistered.v2"
    assert events[1].cadre == "ict_officer" and events[3].waitlist_position == 3
    assert events[1].ticket is None  # not confirmed: no ticket anywhere

    created.promote(the_event, SIGNER, NOW)
    events = created.take_events()
    assert _recorded(events) == [
        (REGISTRATION, "WaitlistPromotedV2"),
        (REGISTRATION_NOTICES, "WaitlistPromotedNotice"),
    ]
    _check_public_and_notice(events)
    assert SIGNER.verify(events[1].ticket) == created.id

    created.request_resend(the_event, SIGNER, NOW)
    [resend] = created.take_events()
    assert (resend.topic, type(resend).__name__) == (
        REGISTRATION_NOTICES,
        "ConfirmationResendRequestedNotice",
    )
    assert SIGNER.verify(resend.ticket) == created.id

    created.update_details(the_event, RegistrationChange(language="en"), NOW)
    events = created.take_events()
    assert _recorded(events) == [
        (REGISTRATION, "RegistrationUpdatedV2"),
        (REGISTRATION_NOTICES, "RegistrationUpdatedNotice"),
    ]
    _check_public_and_notice(events)
    assert events[0].participant.language == "en" and events[0].changed_fields == ["language"]

    created.check_in(the_event, datetime(2025, 2, 11, 7, tzinfo=UTC))
    events = created.take_events()
    assert [t for _, t in _recorded(events)] == [
        "ParticipantCheckedInV2",
        "ParticipantCheckedInNotice",
    ]
    _check_public_and_notice(events)

    created.cancel(the_event, by="organiser", reason="Venue unavailable", now=NOW)
    events = created.take_events()
    assert [t for _, t in _recorded(events)] == [
        "RegistrationCancelledV2",
        "RegistrationCancelledNotice",
    ]
    _check_public_and_notice(events)
    assert events[0].cancelled_by == "organiser" and not hasattr(events[0], "reason")
    assert events[1].reason == "Venue unavailable"

    created.erase("participant_request", NOW)
    [erased] = created.take_events()
    assert (erased.topic, type(erased).__name__) == (REGISTRATION, "PersonalDataErased")


def test_approval_and_rejection_record_public_events_without_the_actor_or_the_reason() -> None:
    the_event = event()
    nominated = registration(the_event, "pending_approval")
    nominated.approve(
        the_event, by="organiser-1", seat=True, waitlist_position=None, signer=SIGNER, now=NOW
    )
    events = nominated.take_events()
    assert [type(e).__name__ for e in events] == [
        "RegistrationApprovedV2",
        "RegistrationApprovedNotice",
    ]
    _check_public_and_notice(events)
    assert "approved_by" not in events[0].model_dump() and SIGNER.verify(events[1].ticket)

    other = registration(the_event, "pending_approval")
    other.reject(the_event, by="organiser-1", reason="Not nominated", now=NOW)
    events = other.take_events()
    assert [type(e).__name__ for e in events] == [
        "RegistrationRejectedV2",
        "RegistrationRejectedNotice",
    ]
    _check_public_and_notice(events)
    assert not {"rejected_by", "reason"} & set(events[0].model_dump())
    assert events[1].reason == "Not nominated"
