"""Emails and calendar entries as they leave the platform (the SMTP capture's .eml files),
read by the standards' own tools (tests/mailcheck.py): RFC 5322/MIME by Python's
``email`` (policy ``default``), RFC 5545 by ``icalendar``, the QR ticket by zbarimg."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from shared.contracts import registration as reg
from tests import mailcheck
from tests.e2e.test_notification_flows import (
    api,
    contact,
    event_details,
    publish,
    registration,
    template_of,
    to,
)
from tests.helpers import create_event, participant

pytestmark = pytest.mark.e2e


def mail(address: str, template: str):
    return lambda m: to(address)(m) and template_of(m) == template


async def tickets_of(platform, event_id: str) -> dict[str, dict[str, Any]]:
    """The organiser's view of an event's registrations, by email: id and ticket."""
    r = await api(
        platform.registration.url,
        "GET",
        f"/api/v1/events/{event_id}/registrations",
        platform.admin_headers,
    )
    assert r.status_code == 200, r.text
    return {item["email"]: item for item in r.json()["items"]}


async def test_notification_calendar_entries_are_requested_updated_and_cancelled(platform) -> None:
    """Through the real services: the confirmation invites (REQUEST, SEQUENCE 0, the
    venue's zone with its VTIMEZONE) with a ticket zbarimg reads; a move of the venue
    updates the same UID with a higher SEQUENCE; the participant's cancellation, and
    the event's, take the entry out (CANCEL, same UID, higher SEQUENCE). Every email
    passes the RFC 5322 checks."""
    base, admin = platform.registration.url, platform.admin_headers
    event = await create_event(base, admin, capacity=5)
    path = f"/api/v1/events/{event['id']}/registrations"
    leaving = participant(full_name="Rehema Juma Mtei", language="sw")
    staying = participant(full_name="Peter Paul Mushi", language="en")
    created = {}
    for body in (leaving, staying):
        r = await api(base, "POST", path, json=body)
        assert r.status_code == 201, r.text
        created[body["email"]] = r.json()
    views = await tickets_of(platform, event["id"])
    first: dict[str, mailcheck.Entry] = {}
    for body in (leaving, staying):
        (confirmation,) = await platform.smtp.wait_for(
            mail(body["email"], "confirmation"), timeout=20
        )
        parsed = mailcheck.check_email(confirmation)
        entry = mailcheck.entry_of(parsed)
        assert (entry.method, entry.sequence) == ("REQUEST", 0)
        assert entry.uid == f"{created[body['email']]['id']}@mkutano.ega.go.tz"
        assert entry.start == datetime.fromisoformat(event["starts_at"]).replace(microsecond=0)
        (zone,) = entry.calendar.walk("VTIMEZONE")
        assert str(zone["TZID"]) == "Africa/Dar_es_Salaam"
        mailcheck.assert_ticket_scans(parsed, views[body["email"].lower()]["ticket"])
        first[body["email"]] = entry

    r = await api(base, "PATCH", f"/api/v1/events/{event['id']}", admin, json={"venue": "JNICC"})
    assert r.status_code == 200, r.text
    (moved,) = await platform.smtp.wait_for(mail(leaving["email"], "event_changed"), timeout=20)
    update = mailcheck.entry_of(mailcheck.check_email(moved))
    assert update.method == "REQUEST" and update.uid == first[leaving["email"]].uid
    assert update.sequence > 0

    me = created[leaving["email"]]
    r = await api(
        base,
        "POST",
        f"/api/v1/registrations/{me['reference']}/cancel",
        {"X-Manage-Token": me["manage_token"]},
    )
    assert r.status_code == 200, r.text
    (gone,) = await platform.smtp.wait_for(mail(leaving["email"], "cancelled"), timeout=20)
    cancel = mailcheck.entry_of(mailcheck.check_email(gone))
    assert cancel.method == "CANCEL" and cancel.uid == update.uid
    assert cancel.sequence > update.sequence

    r = await api(
        base,
        "PATCH",
        f"/api/v1/events/{event['id']}",
        admin,
        json={"state": "cancelled", "cancellation_reason": "Postponed"},
    )
    assert r.status_code == 200, r.text
    (called_off,) = await platform.smtp.wait_for(mail(staying["email"], "cancelled"), timeout=20)
    entry = mailcheck.entry_of(mailcheck.check_email(called_off))
    assert entry.method == "CANCEL" and entry.uid == first[staying["email"]].uid
    assert entry.sequence > first[staying["email"]].sequence
    for body in (leaving, staying):
        for message in platform.smtp.messages():
            if to(body["email"])(message):
                mailcheck.check_email(message)


async def test_notification_a_title_with_line_breaks_from_the_stream_still_mails_everyone(
    platform,
) -> None:
    """An event title with CR/LF (stored before the registration API refused it) gives
    every participant a valid email with a one-line Subject, at the first attempt."""
    event = {**event_details(), "title_en": "Annual\r\ne-Government\nSeminar\u2028 2026"}
    people = [contact("en") for _ in range(2)]
    for person in people:
        await publish(
            platform.kafka.bootstrap,
            registration(event=event, person=person, ticket=f"t.{uuid.uuid4().hex}"),
        )
    for person in people:
        (message,) = await platform.smtp.wait_for(to(person["email"]), timeout=20)
        parsed = mailcheck.check_email(message)
        # (folded after "Subject:" when long: the unfolded value starts with a space)
        assert (
            str(parsed["Subject"])
            .strip()
            .startswith("Registration confirmed: Annual e-Government Seminar 2026")
        )
        (vevent,) = mailcheck.entry_of(parsed).calendar.walk("VEVENT")
        assert str(vevent["SUMMARY"]) == "Annual e-Government Seminar 2026"


async def test_notification_every_email_of_a_lifecycle_passes_the_checks(platform) -> None:
    """Waitlisted, promoted (ticket scanned), updated, checked in, cancelled: each email
    of one registration passes RFC 5322 and carries Date and Auto-Submitted."""
    event, person = event_details(), contact("sw")
    kw: dict[str, Any] = {"event": event, "person": person, "registration_id": str(uuid.uuid4())}
    ticket = f"MK1.{uuid.uuid4().hex}.{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    for event_ in (
        registration(
            reg.ParticipantWaitlisted,
            status="waitlisted",
            waitlist_position=1,
            waitlisted_at=now,
            **kw,
        ),
        registration(reg.WaitlistPromoted, ticket=ticket, **kw),
        registration(reg.RegistrationUpdated, **kw),
        registration(reg.ParticipantCheckedIn, day=now.date().isoformat(), **kw),
        registration(reg.RegistrationCancelled, status="cancelled", **kw),
    ):
        await publish(platform.kafka.bootstrap, event_)
    await platform.smtp.wait_for(mail(person["email"], "cancelled"), timeout=20)
    messages: list[EmailMessage] = [m for m in platform.smtp.messages() if to(person["email"])(m)]
    assert sorted(template_of(m) for m in messages) == [
        "cancelled",
        "checked_in",
        "promoted",
        "updated",
        "waitlisted",
    ]
    for message in messages:
        parsed = mailcheck.check_email(message)
        if template_of(message) == "promoted":
            mailcheck.assert_ticket_scans(parsed, ticket)


@pytest.mark.parametrize("brk", ["\n", "\r\n", "\u2028", "\u2029"])
async def test_notification_an_announcement_subject_with_a_line_break_is_refused(
    platform, brk: str
) -> None:
    spec = {
        "event_id": event_details()["event_id"],
        "subject_sw": "Mabadiliko ya ratiba",
        "subject_en": f"Programme{brk}change",
        "body_sw": "Ufunguzi utaanza saa 3 asubuhi.\n\nKaribuni.",
        "body_en": "The opening starts at 9 am.",
    }
    url, headers = platform.notification.url, platform.admin_headers
    r = await api(url, "POST", "/api/v1/announcements", headers, json=spec)
    assert r.status_code == 422, r.text
    (problem,) = r.json()["error"]["fields"]
    assert problem["field"].endswith("subject_en") and problem["reason"] == "must be a single line"
    r = await api(
        url,
        "POST",
        "/api/v1/announcements",
        headers,
        json={**spec, "subject_en": "x", "body_en": "a\x00"},
    )
    assert r.status_code == 422, r.text
    (problem,) = r.json()["error"]["fields"]
    assert problem["field"].endswith("body_en")
    assert problem["reason"] == "must not contain control characters"
    # Paragraphs are fine in a body.
    r = await api(url, "POST", "/api/v1/announcements", headers, json={**spec, "subject_en": "x"})
    assert r.status_code == 202, r.text
