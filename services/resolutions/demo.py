"""The demo seed of ``make run``: last year's conference with its resolutions in progress.

Dated from the day the stack starts (``shared.demo.demo_calendar``): the previous
conference (``egov-<year>``, held about ten months ago) adopted the resolutions below;
since then coordinators recorded progress (timeline entries dated between the
conference and today), some are completed, most in progress, one is on hold and one has
not started, and two are past their target date. The upcoming conference is there too,
without resolutions yet: they are adopted at it. Every name and title is marked
``[DEMO]`` (the report shows a banner). Illustrative only: real resolutions come in
through the CSV import. How many there are is a property of the data below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from services.resolutions import handlers
from services.resolutions.domain import (
    ActionChange,
    ActionSpec,
    ConferenceSpec,
    DomainError,
    ProgressUpdate,
    Resolution,
    ResolutionSpec,
)
from shared.demo import DemoConference, demo_calendar
from shared.timeutil import EAT

ACTOR = "demo-seed"
VENUE = "Arusha International Conference Centre (AICC), Arusha"
DEFAULT_NOTE = "Taarifa ya utekelezaji imepokelewa."


@dataclass(frozen=True)
class DemoUpdate:
    """A progress update recorded ``day`` days after the conference closed."""

    day: int
    status: str | None
    progress: int | None
    note: str = ""


@dataclass(frozen=True)
class DemoAction:
    """An action added on ``added`` (days after the conference), and its later updates."""

    title: str
    institution: str
    weight: int
    added: int
    status: str
    progress: int | None
    updates: tuple[DemoUpdate, ...] = ()


@dataclass(frozen=True)
class DemoResolution:
    title_sw: str
    title_en: str
    lead_institution: str
    target_days: int  # the target date, in days after the conference opened
    updates: tuple[DemoUpdate, ...] = ()
    actions: tuple[DemoAction, ...] = ()


# As many as the conference adopted (12 at the 4th); the report counts what is here.
RESOLUTIONS: tuple[DemoResolution, ...] = (
    DemoResolution(
        "Kuimarisha usalama wa mifumo ya TEHAMA",
        "Strengthen the security of ICT systems",
        "e-GA",
        240,
        (
            DemoUpdate(45, "in_progress", 30, "Tathmini ya usalama imeanza kwa taasisi 40."),
            DemoUpdate(150, "in_progress", 70, "Taasisi 120 zimefanyiwa tathmini."),
            DemoUpdate(230, "completed", None, "Tathmini ya usalama imefanyika kwa taasisi zote."),
        ),
    ),
    DemoResolution(
        "Kuunganisha mifumo ya taasisi za umma",
        "Integrate public institutions' systems",
        "e-GA",
        455,
        actions=(  # its progress is rolled up from these: (2*100 + 60 + 20) / 4 = 70
            DemoAction(
                "[DEMO] Kuunganisha mfumo wa GovESB",
                "e-GA",
                2,
                21,
                "in_progress",
                40,
                (DemoUpdate(120, "completed", None, "GovESB imeunganishwa na mifumo 24."),),
            ),
            DemoAction(
                "[DEMO] Kuunganisha mifumo ya Wizara ya Fedha",
                "Wizara ya Fedha",
                1,
                21,
                "in_progress",
                20,
                (DemoUpdate(200, None, 60, "Mifumo 6 kati ya 10 imeunganishwa."),),
            ),
            DemoAction(
                "[DEMO] Kuunganisha mifumo ya Halmashauri",
                "TAMISEMI",
                1,
                35,
                "not_started",
                None,
                (DemoUpdate(240, "in_progress", 20, "Halmashauri 37 zimeunganishwa."),),
            ),
        ),
    ),
    DemoResolution(
        "Kujenga uwezo wa wataalamu wa TEHAMA",
        "Build the capacity of ICT professionals",
        "Utumishi",
        640,
        (
            DemoUpdate(60, "in_progress", 15, "Mtaala wa mafunzo umeidhinishwa."),
            DemoUpdate(200, "in_progress", 40, "Wataalamu 300 wamepata mafunzo."),
        ),
    ),
    DemoResolution(
        "Kuhamia kwenye vituo vya data vya Serikali",
        "Move to the Government data centres",
        "e-GA",
        210,  # overdue
        (
            DemoUpdate(40, "in_progress", 20, "Mpango wa kuhamia umeandaliwa."),
            DemoUpdate(180, "delayed", 30, "Ucheleweshaji wa vifaa."),
        ),
    ),
    DemoResolution(
        "Kutumia saini za kidijitali",
        "Adopt digital signatures",
        "e-GA",
        820,
        (DemoUpdate(90, None, None, "Inasubiri kukamilika kwa mfumo wa PKI."),),
    ),
    DemoResolution(
        "Kuboresha huduma za kielektroniki kwa wananchi",
        "Improve e-services for citizens",
        "e-GA",
        270,  # overdue
        (
            DemoUpdate(50, "in_progress", 30, "Huduma 20 zipo kwenye e-Mrejesho."),
            DemoUpdate(210, "in_progress", 55, "Huduma 40 zipo kwenye e-Mrejesho."),
        ),
    ),
    DemoResolution(
        "Kutumia mifumo iliyotengenezwa ndani ya nchi",
        "Use locally developed systems",
        "e-GA",
        640,
        (
            DemoUpdate(75, "in_progress", 40),
            DemoUpdate(280, "in_progress", 65, "Taasisi 150 zinatumia mifumo ya ndani."),
        ),
    ),
    DemoResolution(
        "Kusimamia matumizi ya akili bandia Serikalini",
        "Govern the use of artificial intelligence in Government",
        "Wizara ya Habari",
        365,
        (
            DemoUpdate(100, "in_progress", 10, "Rasimu ya mwongozo imeandaliwa."),
            DemoUpdate(190, "on_hold", None, "Inasubiri mwongozo wa kitaifa."),
        ),
    ),
    DemoResolution(
        "Kuimarisha ulinzi wa taarifa binafsi",
        "Strengthen personal data protection",
        "PDPC",
        270,
        (
            DemoUpdate(30, "in_progress", 50, "Kanuni zimechapishwa."),
            DemoUpdate(160, "completed", None, "Taasisi zote zimesajiliwa PDPC."),
        ),
    ),
    DemoResolution(
        "Kupanua mtandao wa Serikali (GovNet) kwa taasisi zote",
        "Extend the Government network (GovNet) to all institutions",
        "e-GA",
        330,
        (
            DemoUpdate(60, "in_progress", 55, "Taasisi 500 zimeunganishwa."),
            DemoUpdate(285, "in_progress", 80, "Taasisi 720 zimeunganishwa."),
        ),
    ),
    DemoResolution(
        "Kuweka mifumo ya malipo ya kielektroniki",
        "Put electronic payment systems in place",
        "Wizara ya Fedha",
        150,
        (
            DemoUpdate(20, "in_progress", 60),
            DemoUpdate(120, "completed", None, "Mifumo yote inatumia GePG."),
        ),
    ),
    DemoResolution(
        "Kufanya tathmini ya utekelezaji wa Serikali Mtandao kila mwaka",
        "Assess e-Government implementation every year",
        "e-GA",
        364,  # by the next conference
        (DemoUpdate(270, "in_progress", 35, "Dodoso la tathmini limetumwa kwa taasisi."),),
    ),
)


def conference_spec(conference: DemoConference) -> ConferenceSpec:
    return ConferenceSpec(
        id=conference.id,
        name_sw=f"[DEMO] Mkutano wa {conference.ordinal_sw()} wa Mwaka wa Serikali Mtandao "
        f"{conference.year}",
        name_en=f"[DEMO] {conference.ordinal_en()} Annual e-Government Conference "
        f"{conference.year}",
        starts_on=conference.starts_at.date(),
        ends_on=conference.ends_at.date(),
        venue=VENUE,
    )


async def seed_demo(ctx: handlers.Context, today: date | None = None) -> list[str]:
    """Seed the conferences that are not there yet; the ids of those seeded.

    Last year's comes with its resolutions and their progress; a conference that exists
    already (a second start) is left as it is.
    """
    now = ctx.clock()
    calendar = demo_calendar(today or ctx.today())
    seeded = []
    if await _create(ctx, calendar.previous):
        await _seed_resolutions(ctx, calendar.previous, now)
        seeded.append(calendar.previous.id)
    if await _create(ctx, calendar.upcoming):
        seeded.append(calendar.upcoming.id)
    return seeded


async def _create(ctx: handlers.Context, conference: DemoConference) -> bool:
    try:
        await handlers.create_conference(ctx, conference_spec(conference))
    except DomainError:
        return False  # there already
    return True


def _at(conference: DemoConference, day: int, now: datetime) -> datetime:
    """10:00 venue time ``day`` days after the conference closed (never after now)."""
    moment = datetime.combine(conference.ends_at.date() + timedelta(days=day), time(10), EAT)
    return min(moment, now)


async def _seed_resolutions(
    ctx: handlers.Context, conference: DemoConference, now: datetime
) -> None:
    adopted = replace(ctx, clock=lambda: min(conference.ends_at, now))
    starts = conference.starts_at.date()
    for number, demo in enumerate(RESOLUTIONS, start=1):
        resolution = await handlers.create_resolution(
            adopted,
            conference.id,
            ResolutionSpec(
                number=number,
                title_sw=f"[DEMO] {demo.title_sw}",
                title_en=f"[DEMO] {demo.title_en}",
                lead_institution=demo.lead_institution,
                target_date=starts + timedelta(days=demo.target_days),
            ),
            actor=ACTOR,
        )
        # Every dated step of this resolution, in the order it happened.
        steps: list[tuple[int, int, Step]] = [(u.day, 0, _update(u)) for u in demo.updates]
        for i, action in enumerate(demo.actions):
            steps.append((action.added, 1, _add(i, action)))
            steps += [(u.day, 2, _change(i, u)) for u in action.updates]
        action_ids: dict[int, str] = {}
        for day, _, step in sorted(steps, key=lambda s: (s[0], s[1])):
            at = replace(ctx, clock=lambda day=day: _at(conference, day, now))
            resolution = await step(at, resolution, action_ids)


Step = Callable[[handlers.Context, Resolution, dict[int, str]], Awaitable[Resolution]]


def _update(update: DemoUpdate) -> Step:
    async def step(ctx: handlers.Context, resolution: Resolution, _: dict[int, str]) -> Resolution:
        return await handlers.record_update(
            ctx,
            resolution.id,
            ProgressUpdate(
                status=update.status,
                progress=update.progress,
                note=f"[DEMO] {update.note or DEFAULT_NOTE}",
            ),
            expected_version=resolution.version,
            actor=ACTOR,
        )

    return step


def _add(index: int, action: DemoAction) -> Step:
    async def step(
        ctx: handlers.Context, resolution: Resolution, action_ids: dict[int, str]
    ) -> Resolution:
        resolution, added = await handlers.add_action(
            ctx,
            resolution.id,
            ActionSpec(
                title=action.title,
                institution=action.institution,
                status=action.status,
                progress=action.progress,
                weight=action.weight,
            ),
            expected_version=resolution.version,
            actor=ACTOR,
        )
        action_ids[index] = added.id
        return resolution

    return step


def _change(index: int, update: DemoUpdate) -> Step:
    async def step(
        ctx: handlers.Context, resolution: Resolution, action_ids: dict[int, str]
    ) -> Resolution:
        sent = {"status": update.status, "progress": update.progress}
        change = ActionChange(
            **{k: v for k, v in sent.items() if v is not None},
            note=f"[DEMO] {update.note}" if update.note else "",
        )
        return await handlers.change_action(
            ctx,
            resolution.id,
            action_ids[index],
            change,
            expected_version=resolution.version,
            actor=ACTOR,
        )

    return step
