"""The demo seed of ``make run``: the upcoming annual e-Government conference.

Dated from the day the stack starts (``shared.demo.demo_calendar``, venue time), so a
newcomer always finds a conference ahead, published, with registration open, and the
retention rule never erases what they register. Seeded only if absent.
"""

from __future__ import annotations

from datetime import date, datetime

from services.registration import handlers
from services.registration.domain import (
    ContactPersonSpec,
    DomainError,
    EventSpec,
    InstitutionSpec,
)
from shared.demo import demo_calendar
from shared.timeutil import EAT


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
