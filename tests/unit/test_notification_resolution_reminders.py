"""Notification's side of issue 17: each focal person's own report link in every email
about their resolution, the reminders (one template, the rule in its words) and the
coordinators' weekly digest, in Swahili and English."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.notification import messages
from services.notification.domain import resolution_intents
from shared.contracts.resolutions import FocalPerson
from shared.contracts.resolutions_notices import (
    CoordinatorDigestNotice,
    DigestItem,
    ReportLink,
    ResolutionReminderNotice,
    ResolutionUpdatedNotice,
)
from shared.envelope import parse, wrap

NOW = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)
BASE = {
    "resolution_id": "0b8f6c1e-3a57-4a53-9d43-6a7e9b6c1f10",
    "conference_id": "egov-2025",
    "number": 4,
    "title_sw": "Kuimarisha usalama wa mifumo",
    "title_en": "Strengthen systems security",
    "status": "in_progress",
    "progress": 40,
    "version": 3,
}
PEOPLE = [
    FocalPerson(full_name="Juma Hassan", institution="e-GA", email="juma@x.go.tz"),
    FocalPerson(full_name="Amina Ali", institution="TRA", email="amina@y.go.tz", language="en"),
]
LINKS = [
    ReportLink(email="JUMA@x.go.tz", url="https://m.example/report/juma-link", expires_at=NOW),
    ReportLink(email="amina@y.go.tz", url="https://m.example/report/amina-link", expires_at=NOW),
]


def received(event):
    message = wrap(event, "resolutions")
    return parse(message.headers(), message.value(), message.key.encode())


def rendered(intent):
    return messages.render_email(
        intent.template, intent.language, {**intent.context, "language": intent.language}
    )


def test_each_focal_person_gets_their_own_link_in_an_update_email() -> None:
    notice = ResolutionUpdatedNotice(
        **BASE,
        focal_persons=PEOPLE,
        report_links=LINKS,
        previous_status="not_started",
        previous_progress=0,
        updated_at=NOW,
    )
    intents = {i.recipient: i for i in resolution_intents(received(notice))}
    _, text, html = rendered(intents["juma@x.go.tz"])
    assert "https://m.example/report/juma-link" in text and "amina-link" not in text
    assert 'href="https://m.example/report/juma-link"' in html
    _, text, _ = rendered(intents["amina@y.go.tz"])
    assert "https://m.example/report/amina-link" in text and "Report progress" in text


@pytest.mark.parametrize(
    ("rule", "days", "sw", "en"),
    [
        ("overdue", 10, "limepita muda", "past its target date"),
        ("before_target", 7, "zimebaki siku 7", "in 7 days"),
        ("report_due", None, "wakati wa kutuma taarifa", "time to report progress"),
    ],
)
def test_a_reminder_says_its_rule_and_carries_the_link(rule, days, sw, en) -> None:
    notice = ResolutionReminderNotice(
        **BASE,
        focal_persons=PEOPLE,
        report_links=LINKS,
        rule=rule,
        days=days,
        target_date=date(2026, 2, 20),
        lead_institution="e-GA",
        due_at=NOW,
    )
    intents = {i.recipient: i for i in resolution_intents(received(notice))}
    assert {i.template for i in intents.values()} == {"resolution_reminder"}
    subject, text, html = rendered(intents["juma@x.go.tz"])
    assert sw in subject and "juma-link" in text and "juma-link" in html
    subject, text, _ = rendered(intents["amina@y.go.tz"])
    assert en in subject and "Strengthen systems security" in text


@pytest.mark.parametrize("language", ["sw", "en"])
def test_the_digest_goes_to_each_coordinator_listing_what_is_late(language) -> None:
    item = DigestItem(
        resolution_id=BASE["resolution_id"],
        number=4,
        title_sw=BASE["title_sw"],
        title_en=BASE["title_en"],
        lead_institution="e-GA",
        status="in_progress",
        progress=40,
        target_date=date(2026, 2, 20),
        days_overdue=10,
        last_update_at="2026-01-10",
    )
    digest = CoordinatorDigestNotice(
        conference_id="egov-2025",
        name_sw="Mkutano wa Tano",
        name_en="5th Conference",
        week="2026-W10",
        recipients=["c1@x.go.tz", "C1@x.go.tz", "c2@x.go.tz"],
        language=language,
        overdue=[item],
        stale=[item],
        pending_approvals=2,
        report_url="https://m.example/api/v1/conferences/egov-2025/report",
        sent_at=NOW,
    )
    intents = resolution_intents(received(digest))
    assert [i.recipient for i in intents] == ["c1@x.go.tz", "c2@x.go.tz"]
    subject, text, html = rendered(intents[0])
    title = BASE["title_sw"] if language == "sw" else BASE["title_en"]
    assert "2026-W10" in subject and title in text and title in html
    assert "10 " in text and "2" in text and "egov-2025/report" in html
