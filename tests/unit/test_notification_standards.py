"""Every message notification builds, read by its standard's own tools (tests/mailcheck.py):
RFC 5322 and MIME by Python's ``email`` (policy ``default``), RFC 5545 by ``icalendar``,
the QR ticket by zbarimg. And one message that cannot be built fails alone, at once."""

from __future__ import annotations

import base64
import secrets
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import segno
from pydantic import ValidationError

from services.notification import handlers, messages
from services.notification.api import AnnouncementIn
from services.notification.domain import Candidate, intents_for
from shared.contracts.registration import ConfirmationResendRequested, RegistrationCancelled
from tests import mailcheck
from tests.unit.test_notification_handlers import DETAILS, NOW, Env, received, register, registered
from tests.unit.test_notification_messages import EVENT, PARTICIPANT, REQUIRED_EMAIL, context

SENDER = "Mkutano <no-reply@mkutano.ega.go.tz>"
# The venue's local time, as the registration service's events carry it.
LOCAL_EVENT = {
    **EVENT,
    "starts_at": "2025-02-11T08:00:00+03:00",
    "ends_at": "2025-02-13T17:00:00+03:00",
}


# Participants' emails carry their self-service link; a focal person's context has none.
SELF_SERVICE_URL = "https://mkutano.ega.go.tz/my/" + "Ab_-" * 12


def build(
    template: str, language: str = "en", attachments: tuple[str, ...] = (), **ctx: Any
) -> Any:
    return messages.build_email(
        notification_id=f"n-{template}",
        sender=SENDER,
        recipient=PARTICIPANT["email"],
        template=template,
        language=language,
        context={**context(template), "self_service_url": SELF_SERVICE_URL, **ctx},
        attachments=list(attachments),
        date=NOW,
    )


# --------------------------------------------------------------------------- RFC 5322


@pytest.mark.parametrize("language", ["sw", "en"])
@pytest.mark.parametrize("template", sorted(REQUIRED_EMAIL))
def test_every_email_has_a_date_a_message_id_and_says_it_is_automatic(
    template: str, language: str
) -> None:
    attachments = ("qr", "ics") if template in ("confirmation", "promoted", "resend") else ()
    parsed = mailcheck.check_email(
        build(template, language, attachments), automatic=template != "announcement"
    )
    assert parsed["Date"].datetime == NOW
    assert str(parsed["Message-ID"]) == f"<n-{template}@mkutano.ega.go.tz>"


def test_an_email_is_dated_when_it_is_built_by_default() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    message = messages.build_email(
        notification_id="n-1",
        sender=SENDER,
        recipient=PARTICIPANT["email"],
        template="updated",
        language="sw",
        context=context("updated"),
        attachments=[],
    )
    assert before <= mailcheck.parse(message)["Date"].datetime <= datetime.now(UTC)


@pytest.mark.parametrize("brk", ["\r\n", "\n", "\r", "\u2028", "\u2029", "\x85", "\t"])
def test_a_line_break_in_an_event_title_still_gives_a_one_line_subject(brk: str) -> None:
    event = {**EVENT, "title_en": f"Annual{brk}e-Government{brk}{brk}Conference"}
    parsed = mailcheck.check_email(build("confirmation", event=event))
    assert str(parsed["Subject"]).startswith(
        "Registration confirmed: Annual e-Government Conference"
    )


def test_a_line_break_in_a_stored_announcement_subject_still_gives_a_one_line_subject() -> None:
    announcement = {**context("announcement")["announcement"], "subject_en": "Programme\r\nchange"}
    parsed = mailcheck.check_email(
        build("announcement", announcement=announcement), automatic=False
    )
    assert str(parsed["Subject"]).startswith("Programme change |")


# --------------------------------------------------------------------------- RFC 5545


def test_the_invitation_is_a_valid_request_in_dar_es_salaam_time() -> None:
    message = build("confirmation", "en", ("qr", "ics"), event=LOCAL_EVENT, ics_sequence=None)
    parsed = mailcheck.check_email(message)
    (part,) = mailcheck.calendar_parts(parsed)
    assert part.get_content_type() == "text/calendar" and part.get_param("method") == "REQUEST"
    raw = part.get_content().encode()
    assert b"UTC+03:00" not in raw
    assert b"DTSTART;TZID=Africa/Dar_es_Salaam:20250211T080000\r\n" in raw
    entry = mailcheck.check_calendar(raw, method="REQUEST")
    assert (entry.uid, entry.sequence) == ("reg-1@mkutano.ega.go.tz", 0)
    assert entry.start == datetime(2025, 2, 11, 5, tzinfo=UTC)
    (zone,) = entry.calendar.walk("VTIMEZONE")
    assert str(zone["TZID"]) == "Africa/Dar_es_Salaam"
    (event,) = entry.calendar.walk("VEVENT")
    assert str(event["ORGANIZER"]) == "mailto:no-reply@mkutano.ega.go.tz"
    assert str(event["ATTENDEE"]) == f"mailto:{PARTICIPANT['email']}"
    assert event.decoded("DTSTAMP") == NOW


def test_an_event_change_updates_the_same_entry_validly() -> None:
    first = mailcheck.entry_of(
        mailcheck.parse(build("confirmation", attachments=("ics",), ics_sequence=None))
    )
    message = build("event_changed", "sw", ("ics",), event=LOCAL_EVENT)
    update = mailcheck.entry_of(mailcheck.check_email(message))
    assert update.method == "REQUEST" and update.uid == first.uid
    assert update.sequence == 1739250000 > first.sequence


def test_a_title_with_line_breaks_is_one_line_in_the_calendar_too() -> None:
    event = {**LOCAL_EVENT, "title_en": "Annual\r\ne-Government\u2028Conference"}
    entry = mailcheck.entry_of(
        mailcheck.check_email(build("confirmation", "en", ("ics",), event=event))
    )
    (vevent,) = entry.calendar.walk("VEVENT")
    assert str(vevent["SUMMARY"]) == "Annual e-Government Conference"


def test_a_cancelled_registration_removes_the_calendar_entry() -> None:
    """The cancellation email carries METHOD:CANCEL for the confirmation's UID, with a
    SEQUENCE above the confirmation's and any earlier change's."""
    confirmed = registered(1, event=DETAILS)
    cancelled_at = NOW + timedelta(days=3)
    cancelled = RegistrationCancelled(
        **confirmed.model_dump(include={"registration_id", "reference", "event", "participant"}),
        status="cancelled",
        cancelled_at=cancelled_at,
        cancelled_by="participant",
    )
    entries = []
    for event in (confirmed, cancelled):
        (intent,) = intents_for(received(event), sms_enabled=False)
        message = messages.build_email(
            notification_id="n-1",
            sender=SENDER,
            recipient=intent.recipient,
            template=intent.template,
            language=intent.language,
            context=intent.context,
            attachments=list(intent.attachments),
            date=NOW,
        )
        entries.append(mailcheck.entry_of(mailcheck.check_email(message)))
    first, cancel = entries
    assert (first.method, cancel.method) == ("REQUEST", "CANCEL")
    assert cancel.uid == first.uid == "reg-1@mkutano.ega.go.tz"
    assert cancel.sequence == int(cancelled_at.timestamp()) + 1 > first.sequence
    changed_before = int((NOW + timedelta(days=2)).timestamp())  # tell_event_changed's rule
    assert cancel.sequence > changed_before


def test_a_resent_confirmation_is_not_older_than_an_update_before_it() -> None:
    requested_at = NOW + timedelta(days=5)
    resend = ConfirmationResendRequested(
        **registered(1).model_dump(
            include={"registration_id", "reference", "event", "participant", "status"}
        ),
        requested_at=requested_at,
        ticket="t.1",
    )
    (intent,) = intents_for(received(resend), sms_enabled=False)
    assert set(intent.attachments) == {"qr", "ics"}
    message = build("resend", attachments=intent.attachments, **intent.context)
    entry = mailcheck.entry_of(mailcheck.check_email(message))
    assert (entry.method, entry.sequence) == ("REQUEST", int(requested_at.timestamp()))


# --------------------------------------------------------------------------- the QR ticket


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


@pytest.mark.parametrize("ticket", ["t1.abc", "MK1." + "A" * 40 + ".Z9", "x" * 120])
def test_the_qr_ticket_has_a_four_module_quiet_zone_and_a_scanner_reads_it(ticket: str) -> None:
    png = messages.qr_png(ticket)
    width, height = png_size(png)
    modules = segno.make_qr(ticket, error="m").symbol_size(scale=1, border=0)[0]
    assert width == height == (modules + 2 * 4) * messages.QR_SCALE  # ISO/IEC 18004: 4 modules
    assert mailcheck.decode_qr(png) == ticket


def test_tickets_drawn_with_the_fixed_mask_all_scan() -> None:
    # Real tickets: MK2 + base32 of a 16-byte id and a 64-byte signature (131 characters).
    tickets = [
        "MK2" + base64.b32encode(secrets.token_bytes(80)).decode().rstrip("=") for _ in range(40)
    ]
    for ticket in tickets:
        png = messages.qr_png(ticket)
        modules = segno.make_qr(ticket, error="m").symbol_size(scale=1, border=0)[0]
        assert png_size(png) == ((modules + 8) * messages.QR_SCALE,) * 2
        assert mailcheck.decode_qr(png) == ticket


def test_the_ticket_attached_to_a_confirmation_scans_as_the_ticket() -> None:
    mailcheck.assert_ticket_scans(
        mailcheck.parse(build("confirmation", "en", ("qr", "ics"))), "t1.abc"
    )


# --------------------------------------------------------------------------- one bad message


async def test_a_message_that_cannot_be_rendered_fails_at_once_and_the_others_go_out() -> None:
    env = Env(sms=False)
    for n in (1, 2):
        await register(env, n)
    broken, fine = sorted(env.store.notifications.values(), key=lambda x: x.recipient)
    del broken.context["event"]  # e.g. stored before a rule: the template cannot render it
    for n in (broken, fine):
        claimed = await handlers.claim(env.ctx, Candidate(n.id, "pending", 0.0))
        assert await handlers.deliver(env.ctx, claimed) is None  # no retry
    assert env.store.notifications[fine.id].status == "sent"
    failed = env.store.notifications[broken.id]
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_error.startswith("cannot build the confirmation email: UndefinedError")
    (event,) = env.published("NotificationFailed")
    assert event["notification_id"] == broken.id and event["permanent"] is True
    assert [m["To"] for m in env.email.sent] == [fine.recipient]


# --------------------------------------------------------------------------- the API's rule

ANNOUNCEMENT = {
    "event_id": "ev-1",
    "subject_sw": "Mabadiliko",
    "subject_en": "Change",
    "body_sw": "Karibuni.\n\nAsanteni.",
    "body_en": "Welcome.\r\n\r\nThank you.",
}


@pytest.mark.parametrize("brk", ["\n", "\r", "\r\n", "\u2028", "\u2029", "\t", "\x00"])
@pytest.mark.parametrize("field", ["subject_sw", "subject_en"])
def test_an_announcement_subject_must_be_one_line(field: str, brk: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AnnouncementIn(**{**ANNOUNCEMENT, field: f"Programme{brk}change"})
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    assert error["msg"] in ("must be a single line", "must not contain control characters")


@pytest.mark.parametrize("field", ["body_sw", "body_en"])
def test_an_announcement_body_is_plain_text(field: str) -> None:
    assert AnnouncementIn(**ANNOUNCEMENT).body_en == "Welcome.\r\n\r\nThank you."
    with pytest.raises(ValidationError) as caught:
        AnnouncementIn(**{**ANNOUNCEMENT, field: "Karibu\x00ni"})
    ((error),) = caught.value.errors()
    assert error["loc"] == (field,) and error["msg"] == "must not contain control characters"
