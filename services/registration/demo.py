"""The demo seed of ``make run``: the upcoming annual e-Government conference.

Dated from the day the stack starts (``shared.demo.demo_calendar``, venue time), so a
newcomer always finds a conference ahead, published, with registration open, and the
retention rule never erases what they register. Seeded only if absent.
"""

from __future__ import annotations

from datetime import date, datetime

from services.registration import handlers
from services.registration.domain import (
    Category,
    ContactPersonSpec,
    DomainError,
    EventSpec,
    InstitutionSpec,
    Question,
)
from shared.demo import demo_calendar
from shared.timeutil import EAT


def _category(code: str, name_sw: str, name_en: str, fee_tzs: int, **rules: object) -> Category:
    return Category(code=code, name_sw=name_sw, name_en=name_en, fee_tzs=fee_tzs, **rules)


# e-GA's published fees (TZS): ICT cadres 400,000; Permanent Secretaries and heads of
# institutions 200,000; students 20,000. The 2026 invitation also names communications,
# planning, finance, HR, procurement and records officers, and foreign guests. Invited
# speakers and guests of e-GA come free and are confirmed at once: the demo's category
# that works end to end without a payment.
DEMO_CATEGORIES: tuple[Category, ...] = (
    _category("ict_officer", "Kada ya TEHAMA", "ICT cadre", 400_000),
    _category(
        "director_or_head_of_ict",
        "Mkurugenzi / Mkuu wa TEHAMA",
        "Director / Head of ICT",
        400_000,
    ),
    _category("permanent_secretary", "Katibu Mkuu", "Permanent Secretary", 200_000),
    _category(
        "accounting_officer",
        "Mkuu wa Taasisi (Afisa Masuuli)",
        "Head of institution (Accounting Officer)",
        200_000,
    ),
    _category("communications_officer", "Afisa Mawasiliano", "Communications officer", 400_000),
    _category("planning_officer", "Afisa Mipango", "Planning officer", 400_000),
    _category("finance_officer", "Afisa Fedha", "Finance officer", 400_000),
    _category("hr_officer", "Afisa Rasilimali Watu", "Human resources officer", 400_000),
    _category("procurement_officer", "Afisa Ununuzi", "Procurement officer", 400_000),
    _category("records_officer", "Afisa Kumbukumbu", "Records officer", 400_000),
    _category("student", "Mwanafunzi", "Student", 20_000, quota=100),
    _category(
        "foreign_guest", "Mgeni kutoka nje", "Foreign guest", 400_000, requires_approval=True
    ),
    _category("invited_guest", "Mgeni mwalikwa / Mzungumzaji", "Invited guest or speaker", 0),
)

DEMO_QUESTIONS: tuple[Question, ...] = (
    Question.model_validate(
        {
            "id": "field_visit",
            "type": "single_choice",
            "label_sw": "Ziara ya mafunzo (siku ya tatu)",
            "label_en": "Field visit (third day)",
            "help_sw": "Nafasi ni chache.",
            "help_en": "Places are limited.",
            "choices": [
                {
                    "code": "ngorongoro",
                    "label_sw": "Ngorongoro",
                    "label_en": "Ngorongoro",
                    "limit": 60,
                },
                {"code": "none", "label_sw": "Sitashiriki", "label_en": "I will not join"},
            ],
        }
    ),
    Question.model_validate(
        {
            "id": "tshirt_size",
            "type": "single_choice",
            "label_sw": "Saizi ya fulana",
            "label_en": "T-shirt size",
            "choices": [
                {"code": c.lower(), "label_sw": c, "label_en": c} for c in ("S", "M", "L", "XL")
            ],
        }
    ),
    Question.model_validate(
        {
            "id": "university",
            "type": "short_text",
            "label_sw": "Chuo unachosoma",
            "label_en": "Your university",
            "required": True,
            "categories": ["student"],
        }
    ),
)


def demo_event(today: date) -> EventSpec:
    calendar = demo_calendar(today)
    conference = calendar.upcoming
    return EventSpec(
        id=conference.id,
        code=f"EGOV{conference.year}",
        title_sw=(
            f"Mkutano wa {conference.ordinal_sw()} wa Mwaka wa Serikali Mtandao {conference.year}"
        ),
        title_en=f"{conference.ordinal_en()} Annual e-Government Conference {conference.year}",
        description_sw="Demo: mkutano wa mwaka wa Serikali Mtandao (data ya mfano).",
        description_en="Demo: the annual e-Government conference (sample data).",
        theme="Utekelezaji wa Jitihada za Serikali Mtandao na Ubunifu kwa Utoaji wa Huduma Bora "
        "kwa Umma",
        venue="Arusha International Conference Centre (AICC)",
        city="Arusha",
        starts_at=conference.starts_at,
        ends_at=conference.ends_at,
        capacity=1000,
        registration_opens_at=calendar.registration_opens_at,
        registration_closes_at=None,
        state="published",
        categories=list(DEMO_CATEGORIES),
        questions=list(DEMO_QUESTIONS),
    )


async def seed(ctx: handlers.Context, today: date | None = None) -> str | None:
    """Create the demo conference unless it exists; returns its id when it was created.

    ``today`` is the date at the venue unless given."""
    spec = demo_event(today or datetime.now(EAT).date())
    if await ctx.store.get_event(spec.id) is not None:
        return None
    try:
        await handlers.create_event(ctx, spec)
    except DomainError:  # another instance seeded it meanwhile, or its code is taken
        return None
    return spec.id


# -- institutions (issue 13 B) -------------------------------------------------------------
# A handful of real Tanzanian public institutions, one of each common kind; the demo
# contact person's sign-in email lands in the SMTP capture (.data/mail) of `make run`.

DEMO_CONTACT_EMAIL = "taasisi.demo@example.go.tz"


def demo_institutions() -> list[InstitutionSpec]:
    contact = ContactPersonSpec(
        full_name="Neema Demo Mwakilishi",
        email=DEMO_CONTACT_EMAIL,
        phone="+255712000111",
        language="sw",
    )
    rows = [
        ("EGA", "Mamlaka ya Serikali Mtandao", "e-Government Authority", "agency", "Dodoma"),
        ("MOF", "Wizara ya Fedha", "Ministry of Finance", "ministry", "Dodoma"),
        (
            "PO-RALG",
            "Ofisi ya Rais - Tawala za Mikoa na Serikali za Mitaa",
            "President's Office - Regional Administration and Local Government",
            "ministry",
            "Dodoma",
        ),
        (
            "RS-ARUSHA",
            "Sekretarieti ya Mkoa wa Arusha",
            "Arusha Regional Secretariat",
            "regional_secretariat",
            "Arusha",
        ),
        (
            "KINONDONI-MC",
            "Halmashauri ya Manispaa ya Kinondoni",
            "Kinondoni Municipal Council",
            "local_government_authority",
            "Dar es Salaam",
        ),
        (
            "TANESCO",
            "Shirika la Umeme Tanzania",
            "Tanzania Electric Supply Company",
            "public_corporation",
            "Dar es Salaam",
        ),
    ]
    return [
        InstitutionSpec(
            code=code,
            name_sw=name_sw,
            name_en=name_en,
            kind=kind,
            region=region,
            contacts=[contact] if code in ("EGA", "MOF") else [],
        )
        for code, name_sw, name_en, kind, region in rows
    ]


async def seed_institutions(ctx: handlers.Context) -> int:
    """Add the demo institutions that are absent; how many were added."""
    added = 0
    for spec in demo_institutions():
        if await ctx.institutions.get_institution(spec.code) is not None:
            continue
        try:
            await handlers.create_institution(ctx, spec)
            added += 1
        except DomainError:  # another instance seeded it meanwhile
            continue
    return added
