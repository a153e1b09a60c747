"""Resolutions service bootstrap: settings, store, runtime, routes, demo seed."""

from __future__ import annotations

from datetime import date

from services.resolutions import api, handlers
from services.resolutions.domain import (
    ActionSpec,
    ConferenceSpec,
    DomainError,
    ProgressUpdate,
    ResolutionSpec,
)
from services.resolutions.settings import ResolutionsSettings
from services.resolutions.store import RESOLUTIONS, ResolutionsStore
from shared.runtime import ServiceRuntime
from shared.topics import RESOLUTIONS as RESOLUTIONS_TOPIC

DEMO_CONFERENCE = ConferenceSpec(
    id="egov-2024",
    name_sw="[DEMO] Mkutano wa Nne wa Mwaka wa Serikali Mtandao 2024",
    name_en="[DEMO] 4th Annual e-Government Conference 2024",
    starts_on=date(2024, 2, 6),
    ends_on=date(2024, 2, 8),
    venue="Arusha International Conference Centre (AICC), Arusha",
)
# (title sw, title en, lead institution, target, status, progress, note).
# Illustrative only: the real resolutions come in through the CSV import.
_DEMO_TOPICS: list[tuple[str, str, str, date, str, int | None, str]] = [
    (
        "Kuimarisha usalama wa mifumo ya TEHAMA",
        "Strengthen the security of ICT systems",
        "e-GA",
        date(2024, 12, 31),
        "completed",
        None,
        "Tathmini ya usalama imefanyika kwa taasisi zote.",
    ),
    (
        "Kuunganisha mifumo ya taasisi za umma",
        "Integrate public institutions' systems",
        "e-GA",
        date(2025, 6, 30),
        "in_progress",
        None,  # rolled up from its actions
        "",
    ),
    (
        "Kujenga uwezo wa wataalamu wa TEHAMA",
        "Build the capacity of ICT professionals",
        "Utumishi",
        date(2026, 12, 31),
        "in_progress",
        40,
        "Wataalamu 300 wamepata mafunzo.",
    ),
    (
        "Kuhamia kwenye vituo vya data vya Serikali",
        "Move to the Government data centres",
        "e-GA",
        date(2025, 1, 31),
        "delayed",
        30,
        "Ucheleweshaji wa vifaa.",
    ),
    (
        "Kutumia saini za kidijitali",
        "Adopt digital signatures",
        "e-GA",
        date(2027, 6, 30),
        "not_started",
        None,
        "",
    ),
    (
        "Kuboresha huduma za kielektroniki kwa wananchi",
        "Improve e-services for citizens",
        "e-GA",
        date(2026, 6, 30),
        "in_progress",
        55,
        "Huduma 40 zipo kwenye e-Mrejesho.",
    ),
    (
        "Kutumia mifumo iliyotengenezwa ndani ya nchi",
        "Use locally developed systems",
        "e-GA",
        date(2026, 12, 31),
        "in_progress",
        65,
        "",
    ),
    (
        "Kusimamia matumizi ya akili bandia Serikalini",
        "Govern the use of artificial intelligence in Government",
        "Wizara ya Habari",
        date(2025, 12, 31),
        "on_hold",
        10,
        "Inasubiri mwongozo wa kitaifa.",
    ),
    (
        "Kuimarisha ulinzi wa taarifa binafsi",
        "Strengthen personal data protection",
        "PDPC",
        date(2025, 3, 31),
        "completed",
        None,
        "",
    ),
    (
        "Kupanua mtandao wa Serikali (GovNet) kwa taasisi zote",
        "Extend the Government network (GovNet) to all institutions",
        "e-GA",
        date(2025, 9, 30),
        "in_progress",
        80,
        "",
    ),
    (
        "Kuweka mifumo ya malipo ya kielektroniki",
        "Put electronic payment systems in place",
        "Wizara ya Fedha",
        date(2024, 6, 30),
        "completed",
        None,
        "",
    ),
    (
        "Kufanya tathmini ya utekelezaji wa Serikali Mtandao kila mwaka",
        "Assess e-Government implementation every year",
        "e-GA",
        date(2027, 2, 28),
        "in_progress",
        50,
        "",
    ),
]
_DEMO_ACTIONS = [
    ("[DEMO] Kuunganisha mfumo wa GovESB", "e-GA", "completed", None, 2),
    ("[DEMO] Kuunganisha mifumo ya Wizara ya Fedha", "Wizara ya Fedha", "in_progress", 60, 1),
    ("[DEMO] Kuunganisha mifumo ya Halmashauri", "TAMISEMI", "in_progress", 20, 1),
]


def create_runtime(settings: ResolutionsSettings | None = None) -> ServiceRuntime:
    settings = settings or ResolutionsSettings()
    runtime = ServiceRuntime(
        "resolutions",
        settings,
        title="Mkutano resolutions",
        description="Conference resolutions (maazimio), progress updates with a timeline, "
        "and the implementation report. Publishes resolutions.v1.",
        # CSV imports are sent as text/csv; up to ~2,000 rows.
        non_json_paths=[r"^/api/v1/conferences/[^/]+/(resolutions|updates)/import$"],
        error_statuses=api.ERROR_STATUSES,
        max_body_bytes=2 * 1024 * 1024,
    )
    store = ResolutionsStore(runtime.db, signal=runtime.signal)
    ctx = handlers.Context(store=store, wake_relay=runtime.wake_relay)
    runtime.app.state.context = ctx
    runtime.use_outbox([RESOLUTIONS])
    runtime.publishes(RESOLUTIONS_TOPIC)
    runtime.app.include_router(api.router)

    @runtime.on_startup
    async def prepare() -> None:
        await store.ensure_indexes()
        swept = await handlers.sweep_unfinished_imports(ctx)
        if swept:
            runtime.log.warning("unfinished_imports_removed", documents=swept)
        if settings.core.seed_demo and await store.get_conference(DEMO_CONFERENCE.id) is None:
            await seed_demo(ctx)
            runtime.log.info("demo_conference_seeded", conference_id=DEMO_CONFERENCE.id)

    return runtime


async def seed_demo(ctx: handlers.Context) -> None:
    """A clearly labelled demo set, so the report shows something after ``make run``.

    Twelve [DEMO] resolutions (as many as the 4th conference adopted) with a mix of
    statuses, dated updates, one resolution rolled up from actions and some overdue.
    """
    try:
        await handlers.create_conference(ctx, DEMO_CONFERENCE)
    except DomainError:
        return
    actor = "demo-seed"
    for number, (sw, en, lead, target, status, progress, note) in enumerate(_DEMO_TOPICS, start=1):
        spec = ResolutionSpec(
            number=number,
            title_sw=f"[DEMO] {sw}",
            title_en=f"[DEMO] {en}",
            lead_institution=lead,
            target_date=target,
            status="not_started",
        )
        doc = await handlers.create_resolution(ctx, DEMO_CONFERENCE.id, spec, actor=actor)
        if number == 2:
            for title, institution, a_status, a_progress, weight in _DEMO_ACTIONS:
                doc, _ = await handlers.add_action(
                    ctx,
                    doc["_id"],
                    ActionSpec(
                        title=title,
                        institution=institution,
                        status=a_status,
                        progress=a_progress,
                        weight=weight,
                    ),
                    expected_version=doc["version"],
                    actor=actor,
                )
            continue
        if status != "not_started":
            await handlers.record_update(
                ctx,
                doc["_id"],
                ProgressUpdate(
                    status=status,
                    progress=progress,
                    note=f"[DEMO] {note or 'Taarifa ya utekelezaji imepokelewa.'}",
                ),
                expected_version=doc["version"],
                actor=actor,
            )
