"""Notification domain rules: intents per event, reminder schedules, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notification.domain import (
    Notification,
    RetryPolicy,
    due_reminders,
    event_changes,
    intents_for,
    previous_details,
    resolution_intents,
    retry_delay,
    starts_in,
)
from shared.contracts.notification import NotificationFailed, NotificationSent
from shared.contracts.registration import (
    EventDetails,
    ParticipantCheckedIn,
    ParticipantContact,
    ParticipantRegistered,
    RegistrationApproved,
    RegistrationCancelled,
    RegistrationRejected,
    WaitlistPromoted,
)
from shared.contracts.resolutions import FocalPerson, ResolutionCreated, ResolutionUpdated
from shared.envelope import ReceivedEvent
from shared.errors import DomainError

NOW = datetime(2025, 1, 10, 8, 0, tzinfo=UTC)
DETAILS = EventDetails(
    event_id="ev-1",
    code="EGOV",
    title_sw="Mkutano",
    title_en="Conference",
    venue="AICC",
    city="Arusha",
    starts_at=NOW + timedelta(days=30),
    ends_at=NOW + timedelta(days=32),
)
CONTACT = ParticipantContact(
    full_name="Asha Juma",
    email="Asha@Example.go.tz",
    phone="+255712000111",
    language="en",
    institution="e-GA",
)
BASE = {
    "registration_id": "reg-1",
    "reference": "MK-AAAA-BBBB",
    "event": DETAILS,
    "participant": CONTACT,
}


def received(event, ce_id: str = "ce-1") -> ReceivedEvent:
    return ReceivedEvent(
        id=ce_id, source="/t", type=event.ce_type(), time=None, key=None, event=event, headers={}
    )


def test_registered_confirmed_sends_confirmation_with_ticket_by_email_and_sms() -> None:
    event = ParticipantRegistered(
        **BASE, status="confirmed", cadre="ict_officer", registered_at=NOW, ticket="t.1"
    )
    email, sms = intents_for(received(event), sms_enabled=True)
    assert (email.channel, email.template, email.language) == ("email", "confirmation", "en")
    assert email.attachments == ("qr", "ics")
    assert (sms.channel, sms.recipient, sms.attachments) == ("sms", "+255712000111", ())
    assert intents_for(received(event), sms_enabled=False) == [email]


@pytest.mark.parametrize(
    ("event", "template", "ticket"),
    [
        (
            WaitlistPromoted(**BASE, status="confirmed", promoted_at=NOW, ticket="t"),
            "promoted",
            True,
        ),
        (
            RegistrationApproved(
                **BASE, status="waitlisted", approved_at=NOW, approved_by="org", waitlist_position=2
            ),
            "approved",
            False,
        ),
        (
            RegistrationRejected(
                **BASE, status="rejected", rejected_at=NOW, rejected_by="org", reason="full"
            ),
            "rejected",
            False,
        ),
        (
            RegistrationCancelled(
                **BASE, status="cancelled", cancelled_at=NOW, cancelled_by="participant"
            ),
            "cancelled",
            False,
        ),
    ],
)
def test_each_registration_event_has_its_template(event, template: str, ticket: bool) -> None:
    (email,) = intents_for(received(event), sms_enabled=False)
    assert email.template == template
    # A cancellation carries no ticket, only the calendar's CANCEL of the entry.
    calendar_only = ("ics",) if template == "cancelled" else ()
    assert bool(email.attachments) is ticket or email.attachments == calendar_only


def test_idempotency_key_per_event_channel_recipient() -> None:
    event = ParticipantRegistered(**BASE, status="confirmed", cadre="x", registered_at=NOW)
    (a,) = intents_for(received(event, "ce-1"), sms_enabled=False)
    (b,) = intents_for(received(event, "ce-1"), sms_enabled=False)
    (c,) = intents_for(received(event, "ce-2"), sms_enabled=False)
    assert a.key("ce-1") == b.key("ce-1") != c.key("ce-2")


def test_checked_in_thanks_once_per_registration_whatever_the_day() -> None:
    day1 = ParticipantCheckedIn(**BASE, status="confirmed", day="2025-02-11", checked_in_at=NOW)
    day2 = ParticipantCheckedIn(**BASE, status="confirmed", day="2025-02-12", checked_in_at=NOW)
    (a,) = intents_for(received(day1, "ce-1"), sms_enabled=False)
    (b,) = intents_for(received(day2, "ce-2"), sms_enabled=False)
    assert a.template == "checked_in" and a.key("ce-1") == b.key("ce-2")


def test_resolution_update_emails_each_focal_person_in_their_language() -> None:
    people = [
        FocalPerson(full_name="A", institution="x", email="a@x.go.tz", language="en"),
        FocalPerson(full_name="B", institution="y", email="b@y.go.tz", language="sw"),
        FocalPerson(full_name="B again", institution="y", email="B@y.go.tz", language="sw"),
    ]
    common = {
        "resolution_id": "res-1",
        "conference_id": "c",
        "number": 3,
        "title_sw": "t",
        "title_en": "t",
        "status": "in_progress",
        "progress": 50,
        "version": 2,
        "focal_persons": people,
    }
    update = ResolutionUpdated(
        **common,
        previous_status="not_started",
        previous_progress=0,
        recorded_by="u",
        updated_at=NOW,
    )
    intents = resolution_intents(received(update))
    assert [(i.recipient, i.language, i.template) for i in intents] == [
        ("a@x.go.tz", "en", "resolution_updated"),
        ("b@y.go.tz", "sw", "resolution_updated"),
    ]
    assert all(i.resolution_id == "res-1" for i in intents)
    assert resolution_intents(received(ResolutionCreated(**common, created_at=NOW))) == []


def test_due_reminders_skip_times_already_past_and_are_deterministic() -> None:
    start = (NOW + timedelta(days=3)).timestamp()
    now = NOW.timestamp()
    reminders = due_reminders("ev-1", start, [7 * 86400, 86400], now)
    assert [r.offset_s for r in reminders] == [86400]  # 7 days before is already past
    assert reminders[0].due_at == start - 86400
    assert due_reminders("ev-1", start, [86400, 86400], now) == reminders
    moved = due_reminders("ev-1", start + 3600, [86400], now)
    assert moved[0].id != reminders[0].id  # a moved event gets a fresh reminder


def test_starts_in_words() -> None:
    assert starts_in(86400) == {"sw": "kesho", "en": "tomorrow"}
    assert starts_in(7 * 86400)["en"] == "in 7 days"
    assert starts_in(7200)["sw"] == "baada ya saa 2"
    assert starts_in(10)["en"] == "shortly"


def test_retry_delay_grows_with_jitter_and_is_capped() -> None:
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0)]:
        delays = [retry_delay(attempt, 1.0, 60.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jitter: instances do not retry in lockstep


def test_only_dates_and_venue_changes_are_told() -> None:
    assert event_changes(["capacity", "description_en"]) == []
    assert event_changes(["ends_at", "starts_at", "capacity"]) == ["dates"]
    assert event_changes(["city"]) == ["venue"]
    assert event_changes(["venue", "starts_at"]) == ["dates", "venue"]


def test_previous_details_keep_what_differs_as_pairs() -> None:
    before = {
        "starts_at": "2025-02-11T05:00:00Z",
        "ends_at": "2025-02-13T14:00:00Z",
        "venue": "AICC",
        "city": "Arusha",
    }
    moved = {**before, "ends_at": "2025-02-14T14:00:00+00:00"}
    assert previous_details(before, moved) == {
        "starts_at": "2025-02-11T05:00:00Z",
        "ends_at": "2025-02-13T14:00:00Z",
    }
    # The same instant written another way is no change.
    same = {**before, "starts_at": "2025-02-11T08:00:00+03:00"}
    assert previous_details(before, same) == {}
    assert previous_details(before, {**before, "venue": "JNICC"}) == {
        "venue": "AICC",
        "city": "Arusha",
    }
    assert previous_details(None, before) == {}


# --------------------------------------------------------------------------- the aggregate


def a_notification(**kw) -> Notification:
    (intent,) = intents_for(
        received(ParticipantRegistered(**BASE, status="confirmed", cadre="x", registered_at=NOW)),
        sms_enabled=False,
    )
    n = Notification.from_intent(intent, cause_event_id="ce-1", cause_event_type="t", now=NOW)
    for name, value in kw.items():
        setattr(n, name, value)
    return n


def test_a_notification_from_an_intent_is_keyed_on_its_cause() -> None:
    n = a_notification()
    assert n.id == intents_for(
        received(ParticipantRegistered(**BASE, status="confirmed", cadre="x", registered_at=NOW)),
        sms_enabled=False,
    )[0].key("ce-1")
    assert (n.status, n.attempts, n.event_id, n.registration_id) == ("pending", 0, "ev-1", "reg-1")
    assert n.due(NOW) and n.events == []


def test_a_failing_notification_keeps_its_last_ten_errors_and_backs_off() -> None:
    policy = RetryPolicy(max_attempts=20, base_s=1.0, max_s=60.0, jitter=lambda lo, hi: hi)
    n = a_notification()
    delays = []
    for attempt in range(12):
        n.claim(NOW, 60)
        assert not n.due(NOW)  # leased
        delays.append(n.mark_failed(f"e{attempt}", NOW, policy, permanent=False))
        assert n.status == "retry" and not n.due(NOW)
        assert n.due(NOW + timedelta(seconds=delays[-1]))
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0] and delays[-1] == 60.0
    assert [e["error"] for e in n.errors] == [f"e{i}" for i in range(2, 12)]
    assert n.events == []  # a retry is not an event


def test_a_sending_notification_whose_lease_expired_is_due_again() -> None:
    n = a_notification()
    n.claim(NOW, 60)
    assert not n.due(NOW + timedelta(seconds=59)) and n.due(NOW + timedelta(seconds=61))


def test_resend_needs_a_finished_delivery_and_a_recipient() -> None:
    n = a_notification(status="sent", attempts=3)
    n.resend()
    assert (n.status, n.attempts, n.resend_count) == ("pending", 0, 1)
    for status in ("pending", "sending", "retry"):
        with pytest.raises(DomainError) as refused:
            a_notification(status=status).resend()
        assert refused.value.code == "delivery_in_progress"
    with pytest.raises(DomainError) as erased:
        a_notification(status="failed", erased=True).resend()
    assert erased.value.code == "recipient_erased"


def test_sent_and_failed_record_their_events() -> None:
    sent = a_notification(attempts=1)
    sent.mark_sent(NOW, segments=None)
    (event,) = sent.take_events()
    assert isinstance(event, NotificationSent) and event.sent_at == NOW
    dead = a_notification(attempts=8)
    assert dead.mark_failed("SMTP 451", NOW, RetryPolicy(max_attempts=8), permanent=False) is None
    (event,) = dead.take_events()
    assert isinstance(event, NotificationFailed) and not event.permanent and event.attempts == 8


# -- certificates and evaluation (issue 16) ----------------------------------------------


def test_certificate_and_evaluation_notices_are_emailed_and_texted_in_their_language() -> None:
    from services.notification import messages
    from shared.contracts.registration_notices import (
        CertificateIssuedNotice,
        EvaluationInvitedNotice,
    )

    link = "https://mkutano.example.go.tz/my/" + "L" * 48
    cert = CertificateIssuedNotice(
        **BASE,
        status="confirmed",
        self_service_url=link,
        certificate_id="c-1",
        days=["2025-02-11", "2025-02-13"],
        cpd_hours=10.5,
        certificate_url=f"{link}/certificate.pdf",
        verify_url="https://mkutano.example.go.tz/verify/MKC-AAAAA-BBBBB-CCCCC-DDDDD",
        issued_at=NOW,
    )
    email, sms = intents_for(received(cert), sms_enabled=True)
    assert (email.template, email.language, email.attachments) == ("certificate", "en", ())
    assert sms.template == "certificate"
    _, text, html = messages.render_email("certificate", "en", {**email.context, "language": "en"})
    assert f"{link}/certificate.pdf?lang=en" in text and "CPD hours: 10.5" in text
    assert "2025-02-11, 2025-02-13" in html
    invite = EvaluationInvitedNotice(
        **BASE,
        status="confirmed",
        self_service_url=link,
        evaluation_url=f"{link}/evaluation",
        certificate_waits=True,
        invited_at=NOW,
    )
    (a, sms_a) = intents_for(received(invite, "ce-1"), sms_enabled=True)
    (b, _) = intents_for(received(invite, "ce-2"), sms_enabled=True)
    assert a.template == "evaluation_invitation" and a.key("ce-1") == b.key("ce-2")  # once
    text = messages.render_sms("evaluation_invitation", "en", sms_a.context)
    assert f"{link}/evaluation?lang=en" in text and messages.sms_segments(text) == 1
