"""Templates and message building: every template renders in Swahili and English."""

from __future__ import annotations

import email.parser
import email.policy
from datetime import UTC, datetime

import pytest
from icalendar import Calendar

from services.notification import messages

EVENT = {
    "event_id": "ev-1",
    "code": "EGOV2025",
    "title_sw": "Mkutano wa Mwaka wa Serikali Mtandao",
    "title_en": "Annual e-Government Conference",
    "venue": "AICC",
    "city": "Arusha",
    "starts_at": "2025-02-11T05:00:00Z",
    "ends_at": "2025-02-13T14:00:00Z",
    "timezone": "Africa/Dar_es_Salaam",
}
PARTICIPANT = {
    "full_name": "Neema Mollel Said",
    "email": "neema@example.go.tz",
    "phone": "+255712345678",
    "language": "sw",
    "institution": "e-GA",
    "position": "ICT Officer",
}


def context(template: str) -> dict:
    """A full context for any template (registration, reminder, announcement, resolution)."""
    return {
        "participant": PARTICIPANT,
        "reference": "MK-7Q4K-2M9D",
        "registration_id": "reg-1",
        "status": "confirmed",
        "event": EVENT,
        "ticket": "t1.abc",
        "waitlist_position": 3 if template == "waitlisted" else None,
        "reason": "Nafasi za taasisi yako zimejaa" if template == "rejected" else None,
        "changed_fields": ["phone"],
        "changes": ["dates", "venue"],
        "previous": {
            "starts_at": "2025-02-04T05:00:00Z",
            "ends_at": "2025-02-06T14:00:00Z",
            "venue": "JNICC",
            "city": "Dar es Salaam",
        },
        "ics_sequence": 1739250000,
        "starts_in": {"sw": "kesho", "en": "tomorrow"},
        "announcement": {
            "subject_sw": "Mabadiliko ya ratiba",
            "subject_en": "Programme change",
            "body_sw": "Ufunguzi utaanza saa 3 asubuhi.\n\nKaribuni.",
            "body_en": "The opening starts at 9 am.\n\nWelcome.",
        },
        "resolution": {
            "resolution_id": "res-1",
            "conference_id": "egov-2024",
            "number": 4,
            "title_sw": "Kuimarisha usalama wa mifumo",
            "title_en": "Strengthen systems security",
            "status": "in_progress",
            "progress": 40,
            "previous_status": "not_started",
            "previous_progress": 0,
            "note": "Taasisi 20 zimekaguliwa",
        },
        "person": {"full_name": "Juma Hassan", "email": "juma@example.go.tz", "language": "sw"},
        # Certificates and evaluation (issue 16).
        "certificate_url": f"{LINK}/certificate.pdf",
        "verify_url": "https://mkutano.ega.go.tz/verify/MKC-7Q4K2-M9D7Q-4K2M9-D7Q4K",
        "days": ["2025-02-11", "2025-02-13"],
        "cpd_hours": 10.5,
        "evaluation_url": f"{LINK}/evaluation",
        "certificate_waits": template == "evaluation_invitation",
        # Payments (issue 14): the payer's notices.
        "payment": {
            "bill_id": "bill-1",
            "control_number": "991080222529",
            "amount_tzs": 400000,
            "currency": "TZS",
            "outstanding_tzs": 250000,
            "expires_at": "2025-02-04T14:59:00Z",
            "receipt_number": "991080222529-1",
            "paid_tzs": 150000,
            "paid_total_tzs": 150000,
            "channel": "MOBILE",
            "psp_receipt": "PSP1",
            "paid_at": "2025-01-28T07:30:00Z",
            "bill_paid": False,
            "flags": [],
        },
    }


REQUIRED_EMAIL = {
    "confirmation",
    "waitlisted",
    "pending_approval",
    "promoted",
    "approved",
    "rejected",
    "updated",
    "cancelled",
    "resend",
    "reminder",
    "checked_in",
    "event_changed",
    "announcement",
    "resolution_updated",
    "resolution_completed",
    # Payments (issue 14).
    "payment_control_number",
    "payment_reminder",
    "payment_receipt",
}


def test_every_required_template_exists_in_both_languages() -> None:
    assert REQUIRED_EMAIL <= set(messages.template_names("email"))
    assert REQUIRED_EMAIL - {"resolution_updated", "resolution_completed"} <= set(
        messages.template_names("sms")
    )
    for lang in messages.LANGUAGES:
        folder = messages.TEMPLATES / "email" / lang
        for name in messages.template_names("email"):
            for suffix in (".subject.j2", ".txt.j2", ".html.j2"):
                assert (folder / f"{name}{suffix}").exists(), f"{lang}/{name}{suffix}"


@pytest.mark.parametrize("language", ["sw", "en"])
@pytest.mark.parametrize("template", sorted(REQUIRED_EMAIL))
def test_email_renders_naming_event_dates_venue_and_reference(template: str, language: str) -> None:
    subject, text, html = messages.render_email(
        template, language, {**context(template), "language": language}
    )
    assert subject and "\n" not in subject
    assert html.lstrip().startswith("<!doctype html>") and f'lang="{language}"' in html
    if template.startswith("resolution_"):
        title = "Kuimarisha usalama" if language == "sw" else "Strengthen systems security"
        assert title in text and "Juma Hassan" in text
        if template == "resolution_updated":
            assert "40" in subject and "Taasisi 20 zimekaguliwa" in text
        return
    title = EVENT["title_sw"] if language == "sw" else EVENT["title_en"]
    assert title in subject or title in text
    for needle in ("MK-7Q4K-2M9D", "AICC", "Arusha", "11/02/2025", "13/02/2025"):
        assert needle in text, (template, language, needle)
        assert needle in html, (template, language, needle)
    other = EVENT["title_en"] if language == "sw" else EVENT["title_sw"]
    assert other not in text  # the participant's language only


def test_swahili_and_english_differ_and_html_escapes_input() -> None:
    ctx = context("rejected")
    ctx["reason"] = "<script>alert(1)</script>"
    _, text_sw, html_sw = messages.render_email("rejected", "sw", {**ctx, "language": "sw"})
    _, text_en, _ = messages.render_email("rejected", "en", {**ctx, "language": "en"})
    assert "Sababu" in text_sw and "Reason" in text_en
    assert "<script>" not in html_sw and "&lt;script&gt;" in html_sw
    assert "<script>" in text_sw  # plain text is not HTML


@pytest.mark.parametrize("language", ["sw", "en"])
def test_sms_templates_are_gsm7_and_one_segment(language: str) -> None:
    for template in messages.template_names("sms"):
        text = messages.render_sms(template, language, context(template))
        assert "MK-7Q4K-2M9D" in text or template == "announcement"
        if template == "announcement":
            continue  # the organiser's own words: counted, not bounded
        assert all(ch in messages.GSM7 or ch in messages.GSM7_EXT for ch in text), (template, text)
        assert messages.sms_segments(text) == 1, (template, language, len(text), text)


def test_sms_segment_counting() -> None:
    assert messages.sms_segments("a" * 160) == 1
    assert messages.sms_segments("a" * 161) == 2
    assert messages.sms_segments("a" * 306) == 2
    assert messages.sms_segments("a" * 307) == 3
    assert messages.sms_segments("{" * 80) == 1  # extension characters count twice
    assert messages.sms_segments("{" * 81) == 2
    assert messages.sms_segments("’" + "a" * 69) == 1  # a curly quote forces UCS-2
    assert messages.sms_segments("’" + "a" * 70) == 2


def test_confirmation_email_carries_qr_and_calendar_invitation() -> None:
    msg = messages.build_email(
        notification_id="n1",
        sender="Mkutano <no-reply@mkutano.ega.go.tz>",
        recipient=PARTICIPANT["email"],
        template="confirmation",
        language="en",
        context=context("confirmation"),
        attachments=["qr", "ics"],
    )
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(msg.as_bytes())
    assert parsed["Message-ID"] == "<n1@mkutano.ega.go.tz>"
    assert parsed["Content-Language"] == "en"
    assert parsed.get_body(("plain",)) is not None and parsed.get_body(("html",)) is not None
    parts = {p.get_content_type(): p for p in parsed.iter_attachments()}
    assert set(parts) == {"image/png", "text/calendar"}
    assert parts["image/png"].get_content()[:8] == b"\x89PNG\r\n\x1a\n"
    cal = Calendar.from_ical(parts["text/calendar"].get_content())
    (vevent,) = cal.walk("VEVENT")
    assert str(vevent["summary"]) == EVENT["title_en"]
    assert "AICC" in str(vevent["location"])
    assert vevent.decoded("dtstart") == datetime(2025, 2, 11, 5, tzinfo=UTC)  # 08:00 at the venue


def test_unknown_language_falls_back_to_swahili() -> None:
    subject, _, _ = messages.render_email("confirmation", "fr", {**context("x"), "language": "fr"})
    assert subject.startswith("Usajili umethibitishwa")


@pytest.mark.parametrize(
    ("changes", "previous", "needles", "absent"),
    [
        (["dates"], {"starts_at": "2025-02-04T05:00:00Z", "ends_at": "2025-02-06T14:00:00Z"},
         ["New dates: 11/02/2025 08:00", "instead of 04/02/2025 – 06/02/2025"], ["New venue"]),
        (["venue"], {"venue": "JNICC", "city": "Dar es Salaam"},
         ["New venue: AICC, Arusha, instead of JNICC, Dar es Salaam"], ["New dates"]),
        (["dates", "venue"], {}, ["New dates: 11/02/2025", "New venue: AICC"], ["instead of"]),
    ],
)  # fmt: skip
def test_event_changed_says_what_changed_and_what_it_was(
    changes, previous, needles, absent
) -> None:
    ctx = {**context("event_changed"), "changes": changes, "previous": previous}
    subject, text, html = messages.render_email("event_changed", "en", {**ctx, "language": "en"})
    expected = {("dates",): "New dates", ("venue",): "New venue"}
    assert subject.startswith(expected.get(tuple(changes), "New dates and venue"))
    for needle in needles:
        assert needle in text, (needle, text)
    for needle in absent:
        assert needle not in text
    waiting = {**ctx, "status": "waitlisted", "language": "en"}
    assert "ticket remain valid" not in messages.render_email("event_changed", "en", waiting)[1]


def test_event_changed_invitation_updates_the_calendar_entry() -> None:
    message = messages.build_email(
        notification_id="n-1",
        sender="no-reply@mkutano.ega.go.tz",
        recipient="neema@example.go.tz",
        template="event_changed",
        language="sw",
        context=context("event_changed"),
        attachments=["ics"],
    )
    (part,) = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    (item,) = Calendar.from_ical(part.get_content()).walk("VEVENT")
    assert str(item["uid"]) == "reg-1@mkutano.ega.go.tz"  # the confirmation's entry
    assert int(item["sequence"]) == 1739250000
    assert item.decoded("dtstart") == datetime(2025, 2, 11, 5, tzinfo=UTC)


LINK = "https://mkutano.example.go.tz/my/" + "A" * 48
MANAGE = {"sw": "Simamia usajili wako:", "en": "Manage your registration:"}


@pytest.mark.parametrize("language", ["sw", "en"])
@pytest.mark.parametrize(
    "template", sorted(REQUIRED_EMAIL - {"resolution_updated", "resolution_completed"})
)
def test_every_participant_email_carries_the_self_service_link(
    template: str, language: str
) -> None:
    ctx = {**context(template), "language": language, "self_service_url": LINK}
    _, text, html = messages.render_email(template, language, ctx)
    line = f"{MANAGE[language]} {LINK}?lang={language}"
    assert line in text, (template, language)
    assert "\n\n\n" not in text
    assert MANAGE[language] in html and f'href="{LINK}?lang={language}"' in html
    other = MANAGE["en" if language == "sw" else "sw"]
    assert other not in text and other not in html


@pytest.mark.parametrize("language", ["sw", "en"])
@pytest.mark.parametrize("template", sorted(REQUIRED_EMAIL))
def test_a_message_without_a_link_omits_the_sentence(template: str, language: str) -> None:
    """An old v1 record, an erased participant, a focal person: no link, no sentence."""
    for ctx in ({**context(template), "self_service_url": None}, context(template)):
        _, text, html = messages.render_email(template, language, {**ctx, "language": language})
        assert MANAGE[language] not in text and MANAGE[language] not in html
        assert "/my/" not in text and "/my/" not in html
        assert "\n\n\n" not in text
