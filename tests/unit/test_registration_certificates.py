"""Certificates of attendance, CPD hours and the evaluation (issue 16), on the in-memory
store with a fixed clock: what a participant, an organiser and a verifier would see."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pypdf import PdfReader

from services.registration import certificate_pdf, charts, handlers
from services.registration.domain import (
    CertificateSettingsChange,
    DomainError,
    EvaluationFormSpec,
    EventChange,
    EventSpec,
    RegistrationRequest,
    TicketSigner,
)
from tests.unit.fakes.registration import FakeRegistrationStore

# Three event days, 2-4 November 2026 (Arusha); "now" is the third day, 10:00.
DAY1, DAY2, DAY3 = "2026-11-02", "2026-11-03", "2026-11-04"
NOW = datetime(2026, 11, 4, 7, 0, tzinfo=UTC)
_n = iter(range(1, 1_000_000))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> FakeRegistrationStore:
    return FakeRegistrationStore()


@pytest.fixture
def ctx(store: FakeRegistrationStore, clock: Clock) -> handlers.Context:
    return handlers.Context(
        store=store,
        signer=TicketSigner(b"k" * 32),
        notice_version="2025-01",
        clock=clock,
        public_url="https://mkutano.example.go.tz",
    )


async def three_day_event(ctx: handlers.Context) -> str:
    n = next(_n)
    spec = EventSpec.model_validate(
        {
            "id": f"cert-{n}",
            "code": f"CE{n}",
            "title_sw": "Mkutano wa Serikali Mtandao",
            "title_en": "e-Government Conference",
            "venue": "AICC",
            "city": "Arusha",
            "starts_at": "2026-11-02T08:00:00+03:00",
            "ends_at": "2026-11-04T17:00:00+03:00",
            "capacity": 50,
            "state": "published",
        }
    )
    event = await handlers.create_event(ctx, spec)
    await handlers.change_certificate_settings(
        ctx, event.id, CertificateSettingsChange(cpd_hours={DAY1: 6, DAY2: 6, DAY3: 4.5})
    )
    return event.id


async def attendee(ctx: handlers.Context, event_id: str, days: list[str], **extra: Any) -> str:
    n = next(_n)
    body = {
        "full_name": "Asha Juma Mwinyi",
        "email": f"asha.{n}@example.go.tz",
        "phone": f"0712{n:06d}",
        "institution": "Wizara ya Fedha",
        "position": "ICT Officer",
        "cadre": "ict_officer",
        "consent": {"accepted": True},
        **extra,
    }
    registered = await handlers.register_participant(
        ctx, event_id, RegistrationRequest.model_validate(body)
    )
    ticket = ctx.signer.sign(registered.id)
    for day in days:
        await handlers.check_in(ctx, ticket, day)
    return registered.id


async def end(ctx: handlers.Context, clock: Clock, event_id: str) -> None:
    """The event is over: the clock passes its last day."""
    clock.now = NOW + timedelta(days=1)


async def refused(code: str, call: Any) -> DomainError:
    with pytest.raises(DomainError) as err:
        await call
    assert err.value.code == code, err.value.message
    return err.value


async def test_two_of_three_days_certify_those_days_and_their_hours(ctx, store) -> None:
    event_id = await three_day_event(ctx)
    came = await attendee(ctx, event_id, [DAY1, DAY3], professional_registration_number="ICTC-1")
    await attendee(ctx, event_id, [])  # registered, never came
    report = await handlers.issue_certificates(ctx, event_id, by="organiser-1")
    assert (report.issued, report.not_attended) == (1, 1)
    (cert,) = await handlers.list_certificates(ctx, event_id)
    assert cert.registration_id == came
    assert cert.days == [DAY1, DAY3] and cert.hours_by_day == {DAY1: 6.0, DAY3: 4.5}
    assert cert.cpd_hours == 10.5 and cert.status == "valid"
    # The public event says which days, not whose name nor the serial.
    issued = store.last("CertificateIssued")
    assert issued["days"] == [DAY1, DAY3] and issued["cpd_hours"] == 10.5
    assert "Asha" not in str(issued) and cert.serial not in str(issued)
    notice = store.last("CertificateIssuedNotice")
    assert notice["certificate_url"].endswith("/certificate.pdf")
    assert notice["certificate_url"].startswith("https://mkutano.example.go.tz/my/")
    assert notice["verify_url"] == f"https://mkutano.example.go.tz/verify/{cert.serial}"
    # Verification: valid, name, event, days, nothing more.
    answer = (await handlers.verify_certificate(ctx, cert.serial.lower())).verification()
    assert answer == {
        "serial": cert.serial,
        "status": "valid",
        "full_name": "Asha Juma Mwinyi",
        "event": {"title_sw": "Mkutano wa Serikali Mtandao", "title_en": "e-Government Conference"},
        "days": [DAY1, DAY3],
    }
    # A second run issues nothing more; the CPD export has the number and hours.
    again = await handlers.issue_certificates(ctx, event_id)
    assert (again.issued, again.already_issued) == (0, 1)
    (row,) = await handlers.cpd_export(ctx, event_id)
    assert (row.professional_registration_number, row.cpd_hours) == ("ICTC-1", 10.5)


async def test_serials_are_unguessable_and_unknown_ones_are_not_found(ctx) -> None:
    event_id = await three_day_event(ctx)
    for _ in range(5):
        await attendee(ctx, event_id, [DAY1])
    await handlers.issue_certificates(ctx, event_id)
    serials = [c.serial for c in await handlers.list_certificates(ctx, event_id)]
    assert len(set(serials)) == 5
    assert all(len(s.replace("-", "")) == 23 and s.startswith("MKC-") for s in serials)
    await refused("certificate_not_found", handlers.verify_certificate(ctx, "MKC-AAAAA"))


async def test_revoke_then_reissue_after_a_name_correction(ctx, store) -> None:
    event_id = await three_day_event(ctx)
    await attendee(ctx, event_id, [DAY2])
    await handlers.issue_certificates(ctx, event_id)
    (first,) = await handlers.list_certificates(ctx, event_id)
    new = await handlers.reissue_certificate(
        ctx, first.serial, by="organiser-1", full_name="Asha Juma Mwinyi-Said"
    )
    assert new.serial != first.serial and new.generation == 2 and new.replaces == first.id
    old = await handlers.verify_certificate(ctx, first.serial)
    assert (old.status, old.revocation_reason, old.replaced_by) == ("revoked", "reissued", new.id)
    assert (await handlers.verify_certificate(ctx, new.serial)).verification()["full_name"] == (
        "Asha Juma Mwinyi-Said"
    )
    assert store.last("CertificateRevoked")["reason"] == "reissued"
    await refused("certificate_revoked", handlers.reissue_certificate(ctx, first.serial, by="o"))
    revoked = await handlers.revoke_certificate(ctx, new.serial, by="organiser-1")
    assert revoked.verification()["status"] == "revoked"
    assert store.last("CertificateRevoked")["reason"] == "revoked"
    await refused("certificate_revoked", handlers.revoke_certificate(ctx, new.serial, by="o"))
    assert await handlers.cpd_export(ctx, event_id) == []


QUESTIONS = {
    "questions": [
        {
            "id": "overall",
            "type": "single_choice",
            "label_sw": "Kwa ujumla",
            "label_en": "Overall",
            "required": True,
            "choices": [
                {"code": "good", "label_sw": "Nzuri", "label_en": "Good"},
                {"code": "poor", "label_sw": "Mbaya", "label_en": "Poor"},
            ],
        },
        {"id": "again", "type": "yes_no", "label_sw": "Tena?", "label_en": "Again?"},
        {"id": "score", "type": "number", "label_sw": "Alama", "label_en": "Score", "min_value": 1,
         "max_value": 5},
        {"id": "comment", "type": "long_text", "label_sw": "Maoni", "label_en": "Comments"},
        {"id": "topics", "type": "multiple_choice", "label_sw": "Mada", "label_en": "Topics",
         "choices": [
             {"code": "ai", "label_sw": "AI", "label_en": "AI"},
             {"code": "cloud", "label_sw": "Wingu", "label_en": "Cloud"},
         ]},
        {"id": "when", "type": "date", "label_sw": "Lini", "label_en": "When"},
        {"id": "unit", "type": "short_text", "label_sw": "Kitengo", "label_en": "Unit"},
    ],
}  # fmt: skip


async def test_with_the_setting_on_the_certificate_waits_for_the_answer(ctx, store, clock) -> None:
    event_id = await three_day_event(ctx)
    form = EvaluationFormSpec.model_validate({**QUESTIONS, "required_for_certificate": True})
    await handlers.attach_evaluation(ctx, event_id, form)
    first = await attendee(ctx, event_id, [DAY1, DAY2])
    second = await attendee(ctx, event_id, [DAY3])
    await attendee(ctx, event_id, [])
    await end(ctx, clock, event_id)
    done = await handlers.after_events(ctx)
    assert done == {"invited": 2, "issued": 0}
    invitation = store.last("EvaluationInvitedNotice")
    assert invitation["evaluation_url"].endswith("/evaluation") and invitation["certificate_waits"]
    assert await handlers.list_certificates(ctx, event_id) == []
    error = await refused("invalid_answers", handlers.answer_evaluation(ctx, first, {"score": "9"}))
    assert error.field == "overall"
    assert error.details == {"problems": {"overall": "required", "score": "must be at most 5"}}
    await handlers.answer_evaluation(
        ctx,
        first,
        {"overall": "good", "again": "yes", "score": "4", "comment": "Vizuri sana, Asha",
         "topics": ["ai", "cloud"], "when": "2027-02-10", "unit": "TEHAMA"},
    )  # fmt: skip
    (cert,) = await handlers.list_certificates(ctx, event_id)
    assert cert.registration_id == first and cert.days == [DAY1, DAY2]
    await refused("evaluation_already_answered", handlers.answer_evaluation(ctx, first, {}))
    # Running the worker again invites nobody twice and issues nothing to the silent one.
    assert await handlers.after_events(ctx) == {"invited": 0, "issued": 0}
    report = await handlers.issue_certificates(ctx, event_id)
    assert (report.issued, report.awaiting_evaluation) == (0, 1)
    await handlers.answer_evaluation(ctx, second, {"overall": "poor", "again": "no"})
    assert len(await handlers.list_certificates(ctx, event_id)) == 2
    results = await handlers.evaluation_summary(ctx, event_id)
    assert (results["invited"], results["answered"], results["response_rate"]) == (2, 2, 1.0)
    by_id = {q["id"]: q for q in results["questions"]}
    assert by_id["overall"]["distribution"] == [
        {"value": "good", "label": "Good", "count": 1},
        {"value": "poor", "label": "Poor", "count": 1},
    ]
    assert by_id["comment"]["texts"] == ["Vizuri sana, Asha"]
    assert [d["count"] for d in by_id["topics"]["distribution"]] == [1, 1]
    svg = charts.bar_chart(by_id["overall"], "sw")
    assert svg.startswith("<svg") and '<title id="t">Kwa ujumla</title>' in svg
    assert "1 (50%)" in svg
    # The form cannot change under the answers.
    await refused("evaluation_answered", handlers.attach_evaluation(ctx, event_id, form))
    _, rows = await handlers.evaluation_answers(ctx, event_id)
    assert len(rows) == 2 and all(first not in str(r) for r in rows)


async def test_without_the_setting_certificates_and_invitations_go_together(ctx, clock) -> None:
    event_id = await three_day_event(ctx)
    await handlers.attach_evaluation(ctx, event_id, EvaluationFormSpec.model_validate(QUESTIONS))
    await attendee(ctx, event_id, [DAY1])
    await end(ctx, clock, event_id)
    assert await handlers.after_events(ctx) == {"invited": 1, "issued": 1}
    assert await handlers.after_events(ctx) == {"invited": 0, "issued": 0}


async def test_only_attendees_answer_and_the_form_needs_two_options(ctx) -> None:
    event_id = await three_day_event(ctx)
    await handlers.attach_evaluation(ctx, event_id, EvaluationFormSpec.model_validate(QUESTIONS))
    absent = await attendee(ctx, event_id, [])
    await refused("not_attended", handlers.answer_evaluation(ctx, absent, {"overall": "good"}))
    with pytest.raises(ValueError, match="a choice question needs choices"):
        EvaluationFormSpec.model_validate(
            {"questions": [{"id": "q", "type": "single_choice", "label_sw": "a", "label_en": "a"}]}
        )
    with pytest.raises(ValueError, match="asks every attendee"):
        EvaluationFormSpec.model_validate(
            {
                "questions": [
                    {"id": "q", "type": "yes_no", "label_sw": "a", "label_en": "a",
                     "categories": ["ict_officer"]}
                ]
            }
        )  # fmt: skip


async def test_erasure_revokes_the_certificate_and_removes_the_name(ctx, store) -> None:
    event_id = await three_day_event(ctx)
    await handlers.attach_evaluation(ctx, event_id, EvaluationFormSpec.model_validate(QUESTIONS))
    registration_id = await attendee(ctx, event_id, [DAY1])
    await handlers.answer_evaluation(ctx, registration_id, {"overall": "good", "comment": "Asha"})
    await handlers.issue_certificates(ctx, event_id)
    (cert,) = await handlers.list_certificates(ctx, event_id)
    await handlers.erase_registration(ctx, registration_id, reason="participant_request")
    answer = (await handlers.verify_certificate(ctx, cert.serial)).verification()
    assert answer["status"] == "revoked" and answer["full_name"] is None
    assert store.last("CertificateRevoked")["reason"] == "erased"
    results = await handlers.evaluation_summary(ctx, event_id)
    by_id = {q["id"]: q for q in results["questions"]}
    assert by_id["comment"]["texts"] == [] and by_id["overall"]["answers"] == 1
    await refused("registration_not_found", handlers.answer_evaluation(ctx, registration_id, {}))


async def test_certificate_settings_and_late_check_in_keep_to_event_days(ctx) -> None:
    event_id = await three_day_event(ctx)
    error = await refused(
        "not_an_event_day",
        handlers.change_certificate_settings(
            ctx, event_id, CertificateSettingsChange(cpd_hours={"2026-11-09": 3})
        ),
    )
    assert error.field == "cpd_hours"
    registered = await attendee(ctx, event_id, [])
    ticket = ctx.signer.sign(registered)
    error = await refused("future_day", handlers.check_in(ctx, ticket, "2026-11-05"))
    assert error.field == "day"
    await refused("not_an_event_day", handlers.check_in(ctx, ticket, "2026-11-01"))
    with pytest.raises(ValueError):
        CertificateSettingsChange(cpd_hours={DAY1: 25})


async def test_a_cancelled_or_future_event_issues_nothing(ctx) -> None:
    event_id = await three_day_event(ctx)
    await handlers.update_event(ctx, event_id, EventChange(state="cancelled"))
    await refused("event_cancelled", handlers.issue_certificates(ctx, event_id))
    later = EventSpec.model_validate(
        {
            "id": f"later-{next(_n)}",
            "code": f"LA{next(_n)}",
            "title_sw": "Baadaye",
            "title_en": "Later",
            "venue": "AICC",
            "city": "Arusha",
            "starts_at": "2026-12-02T08:00:00+03:00",
            "ends_at": "2026-12-02T17:00:00+03:00",
            "capacity": 5,
            "state": "published",
        }
    )
    await handlers.create_event(ctx, later)
    await refused("event_not_started", handlers.issue_certificates(ctx, later.id))


async def test_the_pdf_shows_name_days_hours_and_a_qr_of_the_verification_page(ctx) -> None:
    event_id = await three_day_event(ctx)
    await attendee(ctx, event_id, [DAY1, DAY3], full_name="Zoë Łucja Mwakyusa", language="en")
    await handlers.issue_certificates(ctx, event_id)
    (cert,) = await handlers.list_certificates(ctx, event_id)
    url = f"https://mkutano.example.go.tz/verify/{cert.serial}"
    pdf = certificate_pdf.render_certificate(cert, url)
    assert pdf == certificate_pdf.render_certificate(cert, url)  # the same bytes each time
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "CERTIFICATE OF ATTENDANCE" in text and "CHETI CHA USHIRIKI" in text
    assert "Zoë Lucja Mwakyusa" in text  # drawn without the letter the core font lacks
    assert "2 November 2026" in text and "4 November 2026" in text
    assert "3 November 2026" not in text and "10.5" in text and cert.serial in text


async def test_the_participants_own_data_lists_their_certificates_and_answers(ctx) -> None:
    event_id = await three_day_event(ctx)
    await handlers.attach_evaluation(ctx, event_id, EvaluationFormSpec.model_validate(QUESTIONS))
    registration_id = await attendee(ctx, event_id, [DAY1, DAY2])
    await handlers.answer_evaluation(ctx, registration_id, {"overall": "good"})
    await handlers.issue_certificates(ctx, event_id)
    data = await handlers.export_own_data(ctx, registration_id)
    (cert,) = data["certificates"]
    assert cert["days"] == [DAY1, DAY2] and cert["cpd_hours"] == 12.0
    assert data["evaluation_answers"] == {"overall": "good"}
