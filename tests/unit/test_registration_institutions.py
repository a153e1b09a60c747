"""Issue 13 B against the in-memory stores, with a fixed clock: the institutions'
registry (one by one and from CSV with a dry run), contact persons, their emailed
single-use sign-in link and the session it opens, and the erasure of a contact person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.registration import demo, handlers
from services.registration.domain import (
    ContactPersonSpec,
    DomainError,
    EventSpec,
    Institution,
    InstitutionChange,
    InstitutionLinkSigner,
    InstitutionSpec,
    RegistrationRequest,
    TicketSigner,
    nomination_payload,
    parse_institutions_csv,
)
from tests.unit.fakes.registration import FakeInstitutionStore, FakeRegistrationStore

NOW = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
CONTACT = "neema.hr@mof.go.tz"


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> FakeRegistrationStore:
    return FakeRegistrationStore()


@pytest.fixture
def institutions(store: FakeRegistrationStore) -> FakeInstitutionStore:
    return FakeInstitutionStore(store)


@pytest.fixture
def ctx(
    store: FakeRegistrationStore, institutions: FakeInstitutionStore, clock: Clock
) -> handlers.Context:
    return handlers.Context(
        store=store,
        signer=TicketSigner(b"k" * 32),
        notice_version="2025-01",
        clock=clock,
        institutions=institutions,
        public_url="https://mkutano.example.go.tz",
    )


def mof(**overrides: Any) -> InstitutionSpec:
    values: dict[str, Any] = {
        "code": "mof",
        "name_sw": "Wizara ya Fedha",
        "name_en": "Ministry of Finance",
        "kind": "ministry",
        "region": "Dodoma",
        "contacts": [
            {"full_name": "Neema Said", "email": "Neema.HR@mof.go.tz", "language": "en"},
        ],
    }
    values.update(overrides)
    return InstitutionSpec.model_validate(values)


def sign_in_notices(institutions: FakeInstitutionStore) -> list[dict[str, Any]]:
    return [m.data for m in institutions.outbox if m.type.endswith("InstitutionSignInRequested.v1")]


def link_of(notice: dict[str, Any]) -> str:
    url = notice["sign_in_url"]
    return url.split("/institution/sign-in/")[1].split("?")[0]


# -- the registry ------------------------------------------------------------------------


async def test_an_institution_is_created_read_and_changed(ctx: handlers.Context) -> None:
    created = await handlers.create_institution(ctx, mof())
    assert created.code == "MOF" and created.kind == "ministry"
    (contact,) = created.contacts
    assert contact["email"] == CONTACT and contact["language"] == "en"
    with pytest.raises(DomainError) as refused:
        await handlers.create_institution(ctx, mof(name_en="Another"))
    assert refused.value.code == "institution_exists" and refused.value.field == "code"

    change = InstitutionChange.model_validate(
        {
            "name_en": "Ministry of Finance (Hazina)",
            "contacts": [
                {"full_name": "Neema Said", "email": CONTACT, "language": "sw"},
                {"full_name": "Juma Ali", "email": "juma.ict@mof.go.tz"},
            ],
        }
    )
    changed = await handlers.update_institution(ctx, "mof", change)
    assert changed.name_en == "Ministry of Finance (Hazina)"
    kept = changed.contact_by_email(CONTACT)
    assert kept is not None and kept["id"] == contact["id"] and kept["language"] == "sw"
    assert [i.code for i in await handlers.list_institutions(ctx, kind="ministry")] == ["MOF"]
    assert await handlers.list_institutions(ctx, kind="agency") == []
    with pytest.raises(DomainError) as missing:
        await handlers.get_institution(ctx, "NOPE")
    assert missing.value.code == "institution_not_found"


def test_bad_institutions_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="kind"):
        mof(kind="ngo")
    with pytest.raises(ValueError, match="same email"):
        mof(contacts=[{"full_name": "A B", "email": "a@x.go.tz"}] * 2)
    with pytest.raises(ValueError, match="code"):
        mof(code="no spaces")


CSV_OK = (
    "code,name_sw,name_en,kind,region,contact_name,contact_email,contact_language\n"
    "EGA,Mamlaka ya Serikali Mtandao,e-Government Authority,agency,Dodoma,"
    "Asha Juma,asha@ega.go.tz,sw\n"
    "MOF,Wizara ya Fedha,Ministry of Finance,ministry,Dodoma,,,\n"
    "RS-ARUSHA,Sekretarieti ya Mkoa wa Arusha,Arusha Regional Secretariat,"
    "regional secretariat,Arusha,,,\n"
)


async def test_the_registry_csv_dry_run_reports_and_writes_nothing(
    ctx: handlers.Context, institutions: FakeInstitutionStore
) -> None:
    await handlers.create_institution(ctx, mof())
    report = await handlers.import_institutions(ctx, CSV_OK, dry_run=True)
    assert not report.problems and not report.applied
    assert [(line.row, line.code, line.action) for line in report.lines] == [
        (2, "EGA", "create"),
        (3, "MOF", "unchanged"),
        (4, "RS-ARUSHA", "create"),
    ]
    assert sorted(institutions.institutions) == ["MOF"]

    done = await handlers.import_institutions(ctx, CSV_OK, dry_run=False)
    assert done.applied
    assert sorted(institutions.institutions) == ["EGA", "MOF", "RS-ARUSHA"]
    assert institutions.institutions["RS-ARUSHA"].kind == "regional_secretariat"
    # An update: new names, and a second contact person added (the first kept).
    update = (
        "code,name_sw,name_en,kind,contact_name,contact_email\n"
        "MOF,Wizara ya Fedha,Ministry of Finance and Planning,ministry,Juma Ali,juma@mof.go.tz\n"
    )
    again = await handlers.import_institutions(ctx, update, dry_run=True)
    assert [(x.action, x.changed_fields) for x in again.lines] == [
        ("update", ["contacts", "name_en", "region"])
    ]
    await handlers.import_institutions(ctx, update, dry_run=False)
    emails = {c["email"] for c in institutions.institutions["MOF"].contacts}
    assert emails == {CONTACT, "juma@mof.go.tz"}


async def test_a_registry_csv_with_bad_rows_names_each_row_and_field_and_writes_nothing(
    ctx: handlers.Context, institutions: FakeInstitutionStore
) -> None:
    bad = (
        "code,name_sw,name_en,kind,region,contact_name,contact_email\n"
        "EGA,Mamlaka ya Serikali Mtandao,e-Government Authority,agency,Dodoma,,\n"
        "TAN ESCO,Shirika,Tanesco,public_corporation,,,\n"
        "MOF,,Ministry of Finance,ngo,,Neema,not-an-email\n"
        "EGA,Mamlaka,e-GA,agency,,,\n"
    )
    report = await handlers.import_institutions(ctx, bad, dry_run=True)
    found = {(p.row, p.field) for p in report.problems}
    assert found == {
        (3, "code"),
        (4, "name_sw"),
        (4, "kind"),
        (4, "contact_email"),
        (5, "code"),
    }, report.problems
    assert "line 2" in next(p.reason for p in report.problems if p.row == 5)
    with pytest.raises(DomainError) as refused:
        await handlers.import_institutions(ctx, bad, dry_run=False)
    assert refused.value.code == "invalid_import"
    assert {(p["row"], p["field"]) for p in refused.value.details["problems"]} == found
    assert institutions.institutions == {}


def test_a_registry_csv_with_a_wrong_header_is_refused_at_line_1() -> None:
    _, problems = parse_institutions_csv("code,name,kind,colour\nEGA,e-GA,agency,blue\n")
    assert {(p.row, p.field, p.reason) for p in problems} == {
        (1, "name_sw", "required column missing"),
        (1, "name_en", "required column missing"),
        (1, "name", "unknown column"),
        (1, "colour", "unknown column"),
    }
    _, empty = parse_institutions_csv("")
    assert [(p.row, p.field) for p in empty] == [(1, "header")]


async def test_the_demo_seeds_real_institutions_with_a_demo_contact(
    ctx: handlers.Context,
) -> None:
    assert await demo.seed_institutions(ctx) >= 5
    assert await demo.seed_institutions(ctx) == 0
    codes = {i.code for i in await handlers.list_institutions(ctx)}
    assert {"EGA", "MOF", "PO-RALG"} <= codes
    kinds = {i.kind for i in await handlers.list_institutions(ctx)}
    assert {"ministry", "agency", "regional_secretariat", "local_government_authority"} <= kinds
    assert await handlers.request_institution_sign_in(ctx, demo.DEMO_CONTACT_EMAIL) == 2


# -- the contact persons' sign-in ---------------------------------------------------------


async def test_a_contact_person_gets_one_single_use_link_that_opens_a_session(
    ctx: handlers.Context, institutions: FakeInstitutionStore, clock: Clock
) -> None:
    await handlers.create_institution(ctx, mof())
    assert await handlers.request_institution_sign_in(ctx, "nobody@mof.go.tz") == 0
    assert await handlers.request_institution_sign_in(ctx, "not an email") == 0
    assert sign_in_notices(institutions) == []

    assert await handlers.request_institution_sign_in(ctx, " NEEMA.hr@MOF.go.tz ") == 1
    (notice,) = sign_in_notices(institutions)
    assert notice["institution_code"] == "MOF"
    assert notice["contact"]["email"] == CONTACT and notice["contact"]["language"] == "en"
    assert notice["sign_in_url"].startswith("https://mkutano.example.go.tz/institution/sign-in/")
    assert notice["sign_in_url"].endswith("?lang=en")
    expires = datetime.fromisoformat(notice["expires_at"])
    assert expires - NOW == timedelta(minutes=15)
    link = link_of(notice)

    # Looking at the link uses nothing; signing in uses it, once.
    assert (await handlers.check_sign_in_link(ctx, link)).code == "MOF"
    session = await handlers.sign_in_with_link(ctx, link)
    assert session.institution.code == "MOF" and session.contact["email"] == CONTACT
    opened = await handlers.open_institution_session(ctx, session.value)
    assert opened.institution.code == "MOF"

    answers = []
    for attempt in (link, link[:-1] + ("A" if link[-1] != "A" else "B"), "x" * 48, ""):
        with pytest.raises(DomainError) as refused:
            await handlers.sign_in_with_link(ctx, attempt)
        answers.append((refused.value.code, refused.value.message))
        with pytest.raises(DomainError):
            await handlers.check_sign_in_link(ctx, attempt)
    assert len(set(answers)) == 1 and answers[0][0] == "sign_in_link_invalid"

    # The session is short-lived.
    clock.now = NOW + timedelta(hours=1, seconds=1)
    with pytest.raises(DomainError) as ended:
        await handlers.open_institution_session(ctx, session.value)
    assert ended.value.code == "institution_session_invalid"


async def test_an_expired_link_gets_the_answer_of_an_unknown_one(
    ctx: handlers.Context, institutions: FakeInstitutionStore, clock: Clock
) -> None:
    await handlers.create_institution(ctx, mof())
    await handlers.request_institution_sign_in(ctx, CONTACT)
    link = link_of(sign_in_notices(institutions)[0])
    clock.now = NOW + timedelta(minutes=15)
    with pytest.raises(DomainError) as expired:
        await handlers.sign_in_with_link(ctx, link)
    with pytest.raises(DomainError) as unknown:
        await handlers.sign_in_with_link(ctx, "A" * 48)
    assert (expired.value.code, expired.value.message) == (
        unknown.value.code,
        unknown.value.message,
    )


async def test_two_uses_of_one_link_at_once_open_one_session(
    ctx: handlers.Context, institutions: FakeInstitutionStore
) -> None:
    import asyncio

    await handlers.create_institution(ctx, mof())
    await handlers.request_institution_sign_in(ctx, CONTACT)
    link = link_of(sign_in_notices(institutions)[0])
    results = await asyncio.gather(
        *(handlers.sign_in_with_link(ctx, link) for _ in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1


def test_links_and_sessions_are_bound_to_their_key_and_purpose() -> None:
    signer = InstitutionLinkSigner(b"a" * 32)
    other = InstitutionLinkSigner(b"b" * 32)
    link, nonce = signer.new_link(NOW + timedelta(minutes=15))
    assert len(link) == 48 and signer.link_nonce(link, NOW) == nonce
    assert other.link_nonce(link, NOW) is None
    assert signer.link_nonce(link, NOW + timedelta(minutes=15)) is None
    contact_id = "3f1c2a4e-7b9d-4c1e-8f00-1234567890ab"
    session = signer.session("MOF", contact_id, NOW + timedelta(hours=1))
    assert signer.open_session(session, NOW) == ("MOF", contact_id)
    assert other.open_session(session, NOW) is None
    assert signer.open_session(link, NOW) is None  # a link is no session
    assert signer.link_nonce(session, NOW) is None
    assert signer.form_token_matches(session, signer.form_token(session))
    assert not signer.form_token_matches(session, other.form_token(session))


async def test_erasing_a_contact_person_removes_their_data_links_and_session(
    ctx: handlers.Context, institutions: FakeInstitutionStore
) -> None:
    created = await handlers.create_institution(ctx, mof())
    contact_id = created.contacts[0]["id"]
    await handlers.request_institution_sign_in(ctx, CONTACT)
    session = await handlers.sign_in_with_link(ctx, link_of(sign_in_notices(institutions)[0]))
    await handlers.request_institution_sign_in(ctx, CONTACT)
    unused = link_of(sign_in_notices(institutions)[1])

    erased = await handlers.erase_contact_person(ctx, "MOF", contact_id)
    assert erased.contacts == [] and institutions.sign_ins == {}
    # Notification is told to drop its copies (the private stream).
    (told,) = [m.data for m in institutions.outbox if "InstitutionContactErased" in m.type]
    assert told == {**told, "contact_id": contact_id, "email": CONTACT, "institution_code": "MOF"}
    for attempt in (
        handlers.open_institution_session(ctx, session.value),
        handlers.sign_in_with_link(ctx, unused),
    ):
        with pytest.raises(DomainError):
            await attempt
    assert await handlers.request_institution_sign_in(ctx, CONTACT) == 0
    with pytest.raises(DomainError) as again:
        await handlers.erase_contact_person(ctx, "MOF", contact_id)
    assert again.value.code == "contact_not_found"


async def test_a_contact_person_is_added_or_updated_by_email(ctx: handlers.Context) -> None:
    await handlers.create_institution(ctx, mof(contacts=[]))
    spec = ContactPersonSpec(full_name="Juma Ali", email="juma@mof.go.tz", phone="0712345678")
    added = await handlers.add_contact_person(ctx, "MOF", spec)
    (contact,) = added.contacts
    assert contact["phone"] == "+255712345678"
    again = await handlers.add_contact_person(
        ctx, "MOF", ContactPersonSpec(full_name="Juma Ali Hassan", email="juma@mof.go.tz")
    )
    (updated,) = again.contacts
    assert updated["id"] == contact["id"] and updated["full_name"] == "Juma Ali Hassan"


# -- nominations ---------------------------------------------------------------------------


def event_spec(**overrides: Any) -> EventSpec:
    values: dict[str, Any] = {
        "id": "seminar-1",
        "code": "SEM1",
        "title_sw": "Semina ya Serikali Mtandao",
        "title_en": "e-Government Seminar",
        "venue": "AICC",
        "city": "Arusha",
        "starts_at": NOW + timedelta(days=30),
        "ends_at": NOW + timedelta(days=32),
        "capacity": 100,
        "registration_opens_at": NOW - timedelta(days=1),
        "state": "published",
    }
    values.update(overrides)
    return EventSpec.model_validate(values)


def officer(n: int, **overrides: str) -> dict[str, str]:
    cells = {
        "full_name": f"Afisa Namba {n}",
        "email": f"afisa{n}@mof.go.tz",
        "phone": f"0713{n:06d}",
        "position": "ICT Officer",
        "category": "ict_officer",
        "language": "en" if n % 2 else "sw",
    }
    cells.update(overrides)
    return cells


def officers_csv(rows: list[dict[str, str]]) -> str:
    header = "full_name,email,phone,position,category,language"
    lines = [",".join(r[c] for c in header.split(",")) for r in rows]
    return "\n".join([header, *lines]) + "\n"


async def _signed_in(ctx: handlers.Context) -> Institution:
    await handlers.create_event(ctx, event_spec())
    return await handlers.create_institution(ctx, mof())


async def test_a_nomination_is_a_registration_of_the_institution(
    ctx: handlers.Context, store: FakeRegistrationStore
) -> None:
    institution = await _signed_in(ctx)
    request = RegistrationRequest.model_validate(nomination_payload(officer(1), institution))
    registered = await handlers.nominate(ctx, institution, "seminar-1", request)
    assert registered.status == "confirmed" and registered.manage_token
    stored = store.registrations[registered.id]
    assert stored.via == "nomination" and stored.institution_code == "MOF"
    assert stored.institution == "Ministry of Finance"  # the nominee writes in English
    assert stored.region == "Dodoma"  # the institution's, as none was given
    assert store.notices(registered.id) == ["ParticipantRegisteredNotice"]
    notice = store.last("ParticipantRegisteredNotice")
    assert notice["participant"]["email"] == "afisa1@mof.go.tz"
    assert "/my/" in notice["self_service_url"]
    listed = await handlers.institution_nominations(ctx, "MOF", "seminar-1")
    assert [r.id for r in listed] == [registered.id]
    assert await handlers.institution_nominations(ctx, "EGA", "seminar-1") == []


async def test_a_nominations_file_is_checked_whole_then_registered_row_by_row(
    ctx: handlers.Context, store: FakeRegistrationStore
) -> None:
    institution = await _signed_in(ctx)
    rows = [officer(n) for n in range(1, 31)]
    report = await handlers.nominate_from_csv(
        ctx, institution, "seminar-1", officers_csv(rows), dry_run=True
    )
    assert report.problems == [] and report.rows == 30 and store.registrations == {}
    done = await handlers.nominate_from_csv(
        ctx, institution, "seminar-1", officers_csv(rows), dry_run=False
    )
    assert len(done.registered) == 30
    assert len({r.id for r in done.registered}) == 30
    assert store.notices().count("ParticipantRegisteredNotice") == 30
    assert all(r.institution_code == "MOF" for r in store.registrations.values())


async def test_a_nominations_file_with_bad_rows_names_them_and_nominates_nobody(
    ctx: handlers.Context, store: FakeRegistrationStore
) -> None:
    institution = await _signed_in(ctx)
    first = RegistrationRequest.model_validate(nomination_payload(officer(9), institution))
    await handlers.nominate(ctx, institution, "seminar-1", first)
    rows = [
        officer(1),
        officer(2, email="not-an-email"),
        officer(3, phone="12"),
        officer(4, category="astronaut"),
        officer(5, email="afisa1@mof.go.tz"),  # twice in the file
        officer(6, email="afisa9@mof.go.tz"),  # registered already
        officer(7, full_name=""),
    ]
    report = await handlers.nominate_from_csv(
        ctx, institution, "seminar-1", officers_csv(rows), dry_run=True
    )
    assert {(p.row, p.field) for p in report.problems} == {
        (3, "email"),
        (4, "phone"),
        (5, "category"),
        (6, "email"),
        (7, "email"),
        (8, "full_name"),
    }, report.problems
    with pytest.raises(DomainError) as refused:
        await handlers.nominate_from_csv(
            ctx, institution, "seminar-1", officers_csv(rows), dry_run=False
        )
    assert refused.value.code == "invalid_import"
    assert len(store.registrations) == 1  # only the one before
    header = await handlers.nominate_from_csv(
        ctx, institution, "seminar-1", "name,email\nA,b@c.go.tz\n", dry_run=True
    )
    assert {(p.row, p.field) for p in header.problems} >= {(1, "full_name"), (1, "name")}


async def test_a_nominee_is_withdrawn_before_the_event_only_by_their_institution(
    ctx: handlers.Context, store: FakeRegistrationStore, clock: Clock
) -> None:
    institution = await _signed_in(ctx)
    other = await handlers.create_institution(
        ctx, mof(code="EGA", name_en="e-GA", name_sw="Mamlaka ya Serikali Mtandao", contacts=[])
    )
    request = RegistrationRequest.model_validate(nomination_payload(officer(2), institution))
    registered = await handlers.nominate(ctx, institution, "seminar-1", request)
    with pytest.raises(DomainError) as not_theirs:
        await handlers.withdraw_nomination(ctx, other, registered.id)
    assert not_theirs.value.code == "nomination_not_found"
    withdrawn = await handlers.withdraw_nomination(ctx, institution, registered.id)
    assert withdrawn.status == "cancelled"
    notice = store.last("RegistrationCancelledNotice")
    assert "Wizara ya Fedha" in notice["reason"]  # in the nominee's language (sw)

    late = await handlers.nominate(
        ctx,
        institution,
        "seminar-1",
        RegistrationRequest.model_validate(nomination_payload(officer(3), institution)),
    )
    clock.now = NOW + timedelta(days=30, minutes=1)
    with pytest.raises(DomainError) as started:
        await handlers.withdraw_nomination(ctx, institution, late.id)
    assert started.value.code == "event_started"


async def test_a_replacement_keeps_the_seat_of_a_full_event(
    ctx: handlers.Context, store: FakeRegistrationStore
) -> None:
    await handlers.create_event(ctx, event_spec(capacity=1))
    institution = await handlers.create_institution(ctx, mof())
    nominee = await handlers.nominate(
        ctx,
        institution,
        "seminar-1",
        RegistrationRequest.model_validate(nomination_payload(officer(1), institution)),
    )
    waiting = await handlers.register_participant(
        ctx,
        "seminar-1",
        RegistrationRequest.model_validate(
            {**nomination_payload(officer(50), institution), "email": "self@example.go.tz"}
        ),
    )
    assert (nominee.status, waiting.status) == ("confirmed", "waitlisted")
    replacement = await handlers.replace_nomination(
        ctx,
        institution,
        nominee.id,
        RegistrationRequest.model_validate(nomination_payload(officer(2), institution)),
    )
    assert replacement.status == "confirmed" and replacement.id != nominee.id
    assert store.registrations[nominee.id].status == "cancelled"
    assert store.registrations[waiting.id].status == "waitlisted"
    assert store.events["seminar-1"].seats_taken == 1
    assert store.registrations[replacement.id].institution_code == "MOF"


async def test_institutions_nominate_for_the_categories_that_need_a_nomination(
    ctx: handlers.Context, store: FakeRegistrationStore
) -> None:
    categories = [
        {
            "code": "ict",
            "name_sw": "Kada ya TEHAMA",
            "name_en": "ICT cadre",
            "fee_tzs": 0,
            "requires_nomination": True,
        },
        {"code": "student", "name_sw": "Wanafunzi", "name_en": "Students", "fee_tzs": 0},
    ]
    await handlers.create_event(ctx, event_spec(categories=categories))
    institution = await handlers.create_institution(ctx, mof())

    def request(n: int, category: str) -> RegistrationRequest:
        return RegistrationRequest.model_validate(
            nomination_payload(officer(n, category=category), institution)
        )

    with pytest.raises(DomainError) as self_registered:
        await handlers.register_participant(ctx, "seminar-1", request(1, "ict"))
    assert self_registered.value.code == "nomination_required"
    nominated = await handlers.nominate(ctx, institution, "seminar-1", request(1, "ict"))
    assert store.registrations[nominated.id].category == "ict"
    with pytest.raises(DomainError) as not_nominable:
        await handlers.nominate(ctx, institution, "seminar-1", request(2, "student"))
    assert not_nominable.value.code == "category_not_nominable"
    rows = [officer(3, category="ict"), officer(4, category="student"), officer(5, category="x")]
    report = await handlers.nominate_from_csv(
        ctx, institution, "seminar-1", officers_csv(rows), dry_run=True
    )
    assert {(p.row, p.field) for p in report.problems} == {(3, "category"), (4, "category")}


async def test_a_group_bill_is_requested_for_the_nominees_awaiting_payment(
    ctx: handlers.Context, institutions: FakeInstitutionStore
) -> None:
    from shared.errors import DomainError
    from tests.unit.test_registration_categories import category

    paid = [category("ict_officer", fee_tzs=400_000)]
    await handlers.create_event(ctx, event_spec(categories=paid))
    institution = await handlers.create_institution(ctx, mof())
    ids = []
    for n in (1, 2):
        request = RegistrationRequest.model_validate(nomination_payload(officer(n), institution))
        registered = await handlers.nominate(ctx, institution, "seminar-1", request)
        assert registered.status == "pending_payment"
        ids.append(registered.id)
    session = handlers.InstitutionSession(institution=institution, contact=institution.contacts[0])
    assert await handlers.request_group_bill(ctx, session, "seminar-1") == 2
    [asked] = [m.data for m in institutions.outbox if m.type.endswith("GroupBillRequested.v1")]
    assert asked["registration_ids"] == sorted(ids) and asked["institution_code"] == "MOF"
    assert asked["payer"]["email"] == institution.contacts[0]["email"]
    # An event with nobody awaiting payment: refused, nothing published.
    await handlers.create_event(ctx, event_spec(id="seminar-2", code="SEM2"))
    with pytest.raises(DomainError) as refused:
        await handlers.request_group_bill(ctx, session, "seminar-2")
    assert refused.value.code == "nothing_to_bill"
    assert len([m for m in institutions.outbox if m.type.endswith("GroupBillRequested.v1")]) == 1
