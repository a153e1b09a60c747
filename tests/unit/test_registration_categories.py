"""Participant categories as data, quotas, nominations and walk-ins, against the fake store.

What is asserted is what a participant or an organiser sees: the status of each
registration, the category and answers it carries, the error codes and fields.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from services.registration import handlers
from services.registration.domain import (
    DEFAULT_CATEGORIES,
    DomainError,
    EventChange,
    RegistrationRequest,
    TicketSigner,
)
from tests.unit.fakes.registration import FakeRegistrationStore
from tests.unit.test_registration_handlers import NOW, Clock, person, spec


@pytest.fixture
def store() -> FakeRegistrationStore:
    return FakeRegistrationStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctx(store: FakeRegistrationStore, clock: Clock) -> handlers.Context:
    return handlers.Context(
        store=store, signer=TicketSigner(b"k" * 32), notice_version="2025-01", clock=clock
    )


def category(code: str, **overrides: Any) -> dict[str, Any]:
    return {"code": code, "name_sw": code.title(), "name_en": code.title(), **overrides}


async def new_event(ctx: handlers.Context, **overrides: Any) -> str:
    return (await handlers.create_event(ctx, spec(**overrides))).id


def applicant(category_code: str, **overrides: Any) -> RegistrationRequest:
    body = person().model_dump(mode="json", exclude={"cadre", "category"})
    return RegistrationRequest.model_validate({**body, "category": category_code, **overrides})


async def refused(code: str, call: Any) -> DomainError:
    with pytest.raises(DomainError) as err:
        await call
    assert err.value.code == code, err.value.message
    return err.value


async def test_a_new_event_has_the_five_cadres_as_free_categories(ctx) -> None:
    event_id = await new_event(ctx)
    event = await ctx.store.get_event(event_id)
    assert [c.code for c in event.categories] == [
        "permanent_secretary",
        "accounting_officer",
        "director_or_head_of_ict",
        "ict_officer",
        "other_officer",
    ]
    assert all(c.fee_tzs == 0 and c.quota is None for c in event.categories)
    assert event.categories == list(DEFAULT_CATEGORIES)


async def test_an_old_client_sending_cadre_registers_in_the_default_category(ctx, store) -> None:
    event_id = await new_event(ctx)
    result = await handlers.register_participant(ctx, event_id, person(cadre="ict_officer"))
    stored = await store.get_registration(result.id)
    assert (stored.category, stored.cadre, stored.via) == ("ict_officer", "ict_officer", "self")
    assert stored.institution_code is None
    public = store.last("ParticipantRegistered")
    assert public["participant"]["category"] == "ict_officer"
    assert store.last("ParticipantRegisteredNotice")["category"] == "ict_officer"


async def test_a_category_outside_the_cadres_is_other_officer_on_the_cadre_field(
    ctx, store
) -> None:
    event_id = await new_event(ctx, categories=[category("student", fee_tzs=20_000)])
    result = await handlers.register_participant(ctx, event_id, applicant("student"))
    stored = await store.get_registration(result.id)
    assert (stored.category, stored.cadre) == ("student", "other_officer")
    assert store.last("ParticipantRegistered")["participant"]["category"] == "student"


async def test_an_unknown_category_is_refused_naming_the_field(ctx) -> None:
    event_id = await new_event(ctx, categories=[category("student")])
    err = await refused(
        "unknown_category",
        handlers.register_participant(ctx, event_id, person(cadre="ict_officer")),
    )
    assert err.field == "category"


async def test_quotas_cap_each_category_and_reserve_its_seats(ctx, store) -> None:
    event_id = await new_event(
        ctx,
        capacity=5,
        categories=[category("student", quota=2), category("guest")],
    )
    students = [
        await handlers.register_participant(ctx, event_id, applicant("student")) for _ in range(3)
    ]
    assert [s.status for s in students] == ["confirmed", "confirmed", "waitlisted"]
    guests = [
        await handlers.register_participant(ctx, event_id, applicant("guest")) for _ in range(4)
    ]
    # Two seats are the students' quota: the guests have three of the five.
    assert [g.status for g in guests] == ["confirmed"] * 3 + ["waitlisted"]
    event = await store.get_event(event_id)
    assert event.seats_taken == 5 and event.category_taken == {"student": 2, "guest": 3}


async def test_a_quota_reserves_its_seats_only_while_they_are_free(ctx) -> None:
    event_id = await new_event(
        ctx, capacity=3, categories=[category("student", quota=1), category("guest")]
    )
    first = [await handlers.register_participant(ctx, event_id, applicant("guest")) for _ in "ab"]
    assert [g.status for g in first] == ["confirmed", "confirmed"]
    third = await handlers.register_participant(ctx, event_id, applicant("guest"))
    assert third.status == "waitlisted"  # the last seat is the student's
    student = await handlers.register_participant(ctx, event_id, applicant("student"))
    assert student.status == "confirmed"


async def test_a_cancellation_promotes_the_first_waiting_person_whose_quota_allows(
    ctx, store
) -> None:
    event_id = await new_event(
        ctx, capacity=3, categories=[category("student", quota=1), category("guest")]
    )
    student = await handlers.register_participant(ctx, event_id, applicant("student"))
    guests = [await handlers.register_participant(ctx, event_id, applicant("guest")) for _ in "ab"]
    waiting_student = await handlers.register_participant(ctx, event_id, applicant("student"))
    waiting_guest = await handlers.register_participant(ctx, event_id, applicant("guest"))
    assert [waiting_student.status, waiting_guest.status] == ["waitlisted", "waitlisted"]
    # A guest cancels: the student first in line cannot take a guest's seat (quota 1);
    # the guest behind them can.
    await handlers.cancel_registration(ctx, guests[0].id, by="participant")
    assert (await store.get_registration(waiting_student.id)).status == "waitlisted"
    assert (await store.get_registration(waiting_guest.id)).status == "confirmed"
    # The student cancels: the waiting student takes the quota's seat.
    await handlers.cancel_registration(ctx, student.id, by="participant")
    assert (await store.get_registration(waiting_student.id)).status == "confirmed"
    event = await store.get_event(event_id)
    assert event.seats_taken == 3 and event.category_taken == {"student": 1, "guest": 2}


async def test_concurrent_registrations_hold_capacity_and_quotas(ctx, store) -> None:
    event_id = await new_event(
        ctx,
        capacity=30,
        categories=[category("student", quota=5), category("ps", quota=10), category("guest")],
    )
    codes = ["student", "ps", "guest"] * 30
    results = await asyncio.gather(
        *(handlers.register_participant(ctx, event_id, applicant(c)) for c in codes)
    )
    confirmed: dict[str, int] = {}
    for code, result in zip(codes, results, strict=True):
        if result.status == "confirmed":
            confirmed[code] = confirmed.get(code, 0) + 1
    assert confirmed == {"student": 5, "ps": 10, "guest": 15}
    assert (await store.get_event(event_id)).seats_taken == 30


async def test_a_category_needing_approval_waits_for_an_organiser(ctx, store) -> None:
    event_id = await new_event(
        ctx, categories=[category("guest"), category("vip", requires_approval=True)]
    )
    vip = await handlers.register_participant(ctx, event_id, applicant("vip"))
    guest = await handlers.register_participant(ctx, event_id, applicant("guest"))
    assert (vip.status, guest.status) == ("pending_approval", "confirmed")
    approved = await handlers.approve_registration(ctx, vip.id, "organiser-1")
    assert approved.status == "confirmed"
    assert (await store.get_event(event_id)).category_taken == {"guest": 1, "vip": 1}


async def test_a_nomination_only_category_refuses_self_registration(ctx, store) -> None:
    event_id = await new_event(
        ctx, categories=[category("officer", requires_nomination=True), category("guest")]
    )
    err = await refused(
        "nomination_required",
        handlers.register_participant(ctx, event_id, applicant("officer")),
    )
    assert err.field == "category"
    assert store.registrations == {}
    nominated = await handlers.register_participant(
        ctx, event_id, applicant("officer"), via="nomination", institution_code="MOF"
    )
    stored = await store.get_registration(nominated.id)
    assert (stored.via, stored.institution_code, stored.status) == (
        "nomination",
        "MOF",
        "confirmed",
    )
    assert store.last("ParticipantRegistered")["participant"]["institution_code"] == "MOF"
    assert store.last("ParticipantRegisteredNotice")["institution_code"] == "MOF"


async def test_organisers_manage_categories_through_the_event(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=10)
    person_id = (await handlers.register_participant(ctx, event_id, person())).id
    change = EventChange(categories=[category("student", quota=4, fee_tzs=20_000)])
    err = await refused("category_in_use", handlers.update_event(ctx, event_id, change))
    assert err.field == "categories"
    keep = [c.model_dump() for c in DEFAULT_CATEGORIES]
    event = await handlers.update_event(
        ctx,
        event_id,
        EventChange(categories=[*keep, category("student", quota=4, fee_tzs=20_000)]),
    )
    assert event.category("student").fee_tzs == 20_000
    assert "categories" in store.last("EventUpdated")["changed_fields"]
    too_many = EventChange(categories=[*keep, category("student", quota=11)])
    await refused("invalid_categories", handlers.update_event(ctx, event_id, too_many))
    await handlers.cancel_registration(ctx, person_id, by="participant")


async def test_raising_a_quota_promotes_that_categorys_waiting_people(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=10, categories=[category("student", quota=1)])
    first = await handlers.register_participant(ctx, event_id, applicant("student"))
    second = await handlers.register_participant(ctx, event_id, applicant("student"))
    assert (first.status, second.status) == ("confirmed", "waitlisted")
    await handlers.update_event(
        ctx, event_id, EventChange(categories=[category("student", quota=2)])
    )
    assert (await store.get_registration(second.id)).status == "confirmed"


async def test_a_quota_cannot_go_below_its_confirmed_seats(ctx) -> None:
    event_id = await new_event(ctx, capacity=10, categories=[category("student", quota=2)])
    for _ in range(2):
        await handlers.register_participant(ctx, event_id, applicant("student"))
    await refused(
        "quota_below_confirmed",
        handlers.update_event(
            ctx, event_id, EventChange(categories=[category("student", quota=1)])
        ),
    )


async def test_reconcile_repairs_the_category_counters(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=10, categories=[category("student", quota=3)])
    await handlers.register_participant(ctx, event_id, applicant("student"))
    store.events[event_id].category_taken["student"] = 3  # a crash left it too high
    store.events[event_id].seats_taken = 3
    result = await handlers.reconcile_seats(ctx, event_id, settle_s=0)
    assert result["recounted"] == 1
    assert store.events[event_id].category_taken == {"student": 1}


async def test_a_walk_in_is_confirmed_and_checked_in_at_once(ctx, store, clock) -> None:
    event_id = await new_event(
        ctx,
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(days=1),
        registration_closes_at=NOW - timedelta(days=2),
        registration_opens_at=NOW - timedelta(days=9),
        categories=[category("officer", requires_nomination=True, requires_approval=True)],
    )
    result = await handlers.register_participant(
        ctx, event_id, applicant("officer"), via="walk_in", by="staff:baraka"
    )
    stored = await store.get_registration(result.id)
    assert (stored.status, stored.via) == ("confirmed", "walk_in")
    assert list(stored.checkins) == ["2026-11-02"]
    assert store.types(result.id) == ["ParticipantRegistered", "ParticipantCheckedIn"]
    # The history names the registrar who registered and checked them in.
    assert [(e["action"], e["by"]) for e in stored.history] == [
        ("created", "staff:baraka"),
        ("walk_in", "staff:baraka"),
    ]


async def test_a_walk_in_is_refused_when_no_seat_is_left(ctx, store) -> None:
    event_id = await new_event(
        ctx,
        capacity=1,
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(days=1),
        categories=[category("guest")],
    )
    await handlers.register_participant(ctx, event_id, applicant("guest"), via="walk_in")
    await refused(
        "event_full",
        handlers.register_participant(ctx, event_id, applicant("guest"), via="walk_in"),
    )
    assert len(store.registrations) == 1


async def test_a_walk_in_is_only_taken_on_an_event_day(ctx) -> None:
    event_id = await new_event(ctx, categories=[category("guest")])  # a month ahead
    await refused(
        "not_an_event_day",
        handlers.register_participant(ctx, event_id, applicant("guest"), via="walk_in"),
    )


async def test_the_demo_conference_has_egas_categories_and_fees(ctx, store) -> None:
    from datetime import date

    from services.registration import demo

    event_id = await demo.seed(ctx, date(2026, 12, 1))
    event = await store.get_event(event_id)
    fees = {c.code: c.fee_tzs for c in event.categories}
    assert fees["ict_officer"] == 400_000
    assert fees["permanent_secretary"] == fees["accounting_officer"] == 200_000
    assert fees["student"] == 20_000
    for code in ("communications", "planning", "finance", "hr", "procurement", "records"):
        assert f"{code}_officer" in fees
    assert "foreign_guest" in fees
    # The free category confirms at once (no payment needed in the demo).
    assert fees["invited_guest"] == 0
    clock_now = event.registration_opens_at
    ctx.clock = lambda: clock_now + (event.starts_at - clock_now) / 2
    guest = await handlers.register_participant(
        ctx,
        event_id,
        applicant("invited_guest", answers={"field_visit": "ngorongoro"}),
    )
    assert guest.status == "confirmed"
    err = await refused(
        "invalid_answers",
        handlers.register_participant(ctx, event_id, applicant("student")),
    )
    assert err.field == "answers.university" and "required" in err.message


# -- questions and answers ---------------------------------------------------------------

QUESTIONS = [
    {
        "id": "field_visit",
        "type": "single_choice",
        "label_sw": "Ziara",
        "label_en": "Field visit",
        "choices": [
            {"code": "ngorongoro", "label_sw": "Ngorongoro", "label_en": "Ngorongoro", "limit": 1},
            {"code": "none", "label_sw": "Hapana", "label_en": "None"},
        ],
    },
    {
        "id": "sessions",
        "type": "multiple_choice",
        "label_sw": "Vikao",
        "label_en": "Sessions",
        "max_choices": 2,
        "choices": [{"code": c, "label_sw": c, "label_en": c} for c in ("ai", "cyber", "data")],
    },
    {"id": "vegetarian", "type": "yes_no", "label_sw": "Mboga", "label_en": "Vegetarian"},
    {"id": "years", "type": "number", "label_sw": "Miaka", "label_en": "Years", "min_value": 0},
    {"id": "arrival", "type": "date", "label_sw": "Kufika", "label_en": "Arrival"},
    {"id": "bio", "type": "long_text", "label_sw": "Wasifu", "label_en": "Bio", "max_length": 20},
    {
        "id": "university",
        "type": "short_text",
        "label_sw": "Chuo",
        "label_en": "University",
        "required": True,
        "categories": ["student"],
    },
]


async def question_event(ctx: handlers.Context) -> str:
    return await new_event(
        ctx, categories=[category("student"), category("guest")], questions=QUESTIONS
    )


@pytest.mark.parametrize(
    ("answers", "field", "reason"),
    [
        ({"colour": "red"}, "answers.colour", "no such question"),
        ({"field_visit": "moon"}, "answers.field_visit", "'moon' is not one of the choices"),
        ({"field_visit": ["none"]}, "answers.field_visit", "must be one of the choices' codes"),
        ({"sessions": ["ai", "ai"]}, "answers.sessions", "a choice is picked twice"),
        ({"sessions": ["ai", "cyber", "data"]}, "answers.sessions", "at most 2 choices"),
        ({"vegetarian": "yes"}, "answers.vegetarian", "must be true or false"),
        ({"years": True}, "answers.years", "must be a number"),
        ({"years": -1}, "answers.years", "must be at least 0"),
        ({"arrival": "10/05/2027"}, "answers.arrival", "must be a date (YYYY-MM-DD)"),
        ({"bio": "x" * 21}, "answers.bio", "must be at most 20 characters"),
        ({"bio": "a\x00b"}, "answers.bio", "must not contain control characters"),
        ({"university": "UDSM"}, "answers.university", "not asked of this category"),
    ],
)
async def test_a_bad_answer_is_refused_naming_the_question_and_the_reason(
    ctx, store, answers, field, reason
) -> None:
    event_id = await question_event(ctx)
    err = await refused(
        "invalid_answers",
        handlers.register_participant(ctx, event_id, applicant("guest", answers=answers)),
    )
    assert err.details["fields"] == [{"field": field, "reason": reason}]
    assert store.registrations == {}


async def test_answers_are_stored_normalised_and_a_limited_choice_runs_out(ctx, store) -> None:
    event_id = await question_event(ctx)
    answers = {
        "field_visit": "ngorongoro",
        "sessions": ["cyber", "ai"],
        "vegetarian": False,
        "years": 4.0,
        "arrival": "2027-05-10",
        "bio": "  Afisa\r\nTEHAMA ",
    }
    first = await handlers.register_participant(ctx, event_id, applicant("guest", answers=answers))
    stored = await store.get_registration(first.id)
    assert stored.answers == {
        "field_visit": "ngorongoro",
        "sessions": ["ai", "cyber"],
        "vegetarian": False,
        "years": 4,
        "arrival": "2027-05-10",
        "bio": "Afisa\nTEHAMA",
    }
    err = await refused(
        "choice_full",
        handlers.register_participant(
            ctx, event_id, applicant("guest", answers={"field_visit": "ngorongoro"})
        ),
    )
    assert err.field == "answers.field_visit"
    await handlers.cancel_registration(ctx, first.id, by="participant")
    again = await handlers.register_participant(
        ctx, event_id, applicant("guest", answers={"field_visit": "ngorongoro"})
    )
    assert again.status == "confirmed"


async def test_an_already_registered_email_gives_its_choice_back(ctx, store) -> None:
    event_id = await question_event(ctx)
    body = applicant("guest", answers={"field_visit": "ngorongoro"})
    await handlers.register_participant(ctx, event_id, body)
    await handlers.cancel_registration(ctx, next(iter(store.registrations)), by="participant")
    await refused("already_registered", handlers.register_participant(ctx, event_id, body))
    assert (await store.get_event(event_id)).choice_taken["field_visit"]["ngorongoro"] == 0


async def test_statistics_count_categories_and_answers(ctx) -> None:
    event_id = await question_event(ctx)
    for code, visit in (("guest", "ngorongoro"), ("guest", "none"), ("student", "none")):
        extra = {"university": "UDSM"} if code == "student" else {}
        await handlers.register_participant(
            ctx,
            event_id,
            applicant(code, answers={"field_visit": visit, "vegetarian": True, **extra}),
        )
    stats = await handlers.event_statistics(ctx, event_id)
    assert stats["by_category"] == {"guest": 2, "student": 1}
    assert stats["by_via"] == {"self": 3}
    assert stats["answers"]["field_visit"] == {
        "type": "single_choice",
        "answered": 3,
        "choices": {"ngorongoro": 1, "none": 2},
        "places_left": {"ngorongoro": 0},
    }
    assert stats["answers"]["vegetarian"]["choices"] == {"yes": 3, "no": 0}
    assert stats["answers"]["university"] == {"type": "short_text", "answered": 1}


def test_a_question_that_does_not_hold_together_is_refused() -> None:
    from pydantic import ValidationError

    from services.registration.domain import Question

    with pytest.raises(ValidationError, match="a choice question needs choices"):
        Question.model_validate(
            {"id": "q", "type": "single_choice", "label_sw": "a", "label_en": "a"}
        )
    with pytest.raises(ValidationError, match="asked of unknown categories"):
        spec(questions=[{**QUESTIONS[6]}], categories=[category("guest")])
    with pytest.raises(ValidationError, match="above the capacity"):
        spec(capacity=5, categories=[category("aa", quota=3), category("bb", quota=3)])


# -- organisers' imports -----------------------------------------------------------------


def import_file(
    *rows: str, header: str = "full_name,email,phone,institution,position,category"
) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


async def test_an_import_dry_run_names_each_bad_row_and_writes_nothing(ctx, store) -> None:
    event_id = await question_event(ctx)
    body = import_file(
        "Asha Juma,asha@example.go.tz,0712000001,e-GA,Afisa,guest,ngorongoro",
        "Baraka,not-an-email,0712000002,e-GA,Afisa,guest,none",
        "Chausiku,chausiku@example.go.tz,0712000003,e-GA,Afisa,minister,none",
        "Dotto,dotto@example.go.tz,0712000004,e-GA,Afisa,guest,ngorongoro",
        "Asha again,asha@example.go.tz,0712000005,e-GA,Afisa,guest,none",
        header="full_name,email,phone,institution,position,category,answers.field_visit",
    )
    report = await handlers.import_registrants(ctx, event_id, body, dry_run=True)
    assert report["valid"] is False and report["rows"] == 5
    assert [(p["row"], p["field"]) for p in report["problems"]] == [
        (3, "email"),
        (4, "category"),
        (5, "answers.field_visit"),  # the one place went to row 2
        (6, "email"),
    ]
    err = await refused(
        "import_invalid", handlers.import_registrants(ctx, event_id, body, dry_run=False)
    )
    assert len(err.details["problems"]) == 4
    assert store.registrations == {}


async def test_an_import_with_a_wrong_header_is_refused(ctx) -> None:
    event_id = await question_event(ctx)
    report = await handlers.import_registrants(
        ctx, event_id, b"name,email\nA,a@example.go.tz\n", dry_run=True
    )
    fields = {p["field"] for p in report["problems"]}
    assert {p["row"] for p in report["problems"]} == {1}
    assert {"name", "full_name", "phone", "category"} <= fields
    odd = await handlers.import_registrants(ctx, event_id, b"\xff\xfe", dry_run=True)
    assert odd["problems"][0]["reason"] == "not UTF-8 text"


async def test_a_clean_import_registers_everyone_and_notifies_each(ctx, store) -> None:
    event_id = await new_event(
        ctx, capacity=2, categories=[category("officer", requires_nomination=True)]
    )
    body = import_file(
        *(f"Afisa {i},afisa{i}@example.go.tz,071200010{i},TRA,Afisa,officer" for i in range(3))
    )
    report = await handlers.import_registrants(ctx, event_id, body, dry_run=False, by="staff:amina")
    assert report["imported"] == 3 and report["by_status"] == {"confirmed": 2, "waitlisted": 1}
    assert {r.via for r in store.registrations.values()} == {"import"}
    assert {r.history[0]["by"] for r in store.registrations.values()} == {"staff:amina"}
    assert store.notices().count("ParticipantRegisteredNotice") == 3
    again = await handlers.import_registrants(ctx, event_id, body, dry_run=True)
    assert {p["reason"] for p in again["problems"]} == {"already registered for this event"}


async def test_erasure_removes_the_answers_and_the_nominating_institution(ctx, store) -> None:
    event_id = await question_event(ctx)
    registered = await handlers.register_participant(
        ctx,
        event_id,
        applicant("guest", answers={"field_visit": "ngorongoro", "bio": "Mama wa watoto 3"}),
        via="nomination",
        institution_code="TRA",
    )
    await handlers.erase_registration(ctx, registered.id, reason="participant_request")
    erased = await store.get_registration(registered.id)
    assert erased.answers == {} and erased.institution_code is None
    assert erased.category == "guest"
    # Cancelled first: the field visit's place went back.
    assert (await store.get_event(event_id)).choice_taken["field_visit"]["ngorongoro"] == 0


async def test_a_number_too_large_for_a_float_is_refused_not_a_crash(ctx) -> None:
    event_id = await question_event(ctx)
    err = await refused(
        "invalid_answers",
        handlers.register_participant(
            ctx, event_id, applicant("guest", answers={"years": 10**400})
        ),
    )
    assert err.field == "answers.years"
