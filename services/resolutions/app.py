"""Resolutions service bootstrap: settings, store, runtime, routes, demo seed."""

from __future__ import annotations

from datetime import date

from services.resolutions import api, handlers
from services.resolutions.domain import ConferenceSpec, DomainError, ResolutionSpec
from services.resolutions.settings import ResolutionsSettings
from services.resolutions.store import RESOLUTIONS, ResolutionsStore
from shared.contracts import resolutions as resolution_events
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
_DEMO_TOPICS = [
    (
        "Kuimarisha usalama wa mifumo ya TEHAMA",
        "Strengthen the security of ICT systems",
        "completed",
        None,
    ),
    (
        "Kuunganisha mifumo ya taasisi za umma",
        "Integrate public institutions' systems",
        "in_progress",
        60,
    ),
    (
        "Kujenga uwezo wa wataalamu wa TEHAMA",
        "Build the capacity of ICT professionals",
        "in_progress",
        40,
    ),
    (
        "Kuhamia kwenye vituo vya data vya Serikali",
        "Move to the Government data centres",
        "delayed",
        30,
    ),
    ("Kutumia saini za kidijitali", "Adopt digital signatures", "not_started", None),
    (
        "Kuboresha huduma za kielektroniki kwa wananchi",
        "Improve e-services for citizens",
        "in_progress",
        55,
    ),
]


def create_runtime(settings: ResolutionsSettings | None = None) -> ServiceRuntime:
    settings = settings or ResolutionsSettings()
    runtime = ServiceRuntime(
        "resolutions",
        settings,
        title="Mkutano resolutions",
        description="Conference resolutions (maazimio), progress updates with a timeline, "
        "and the implementation report. Publishes resolutions.v1.",
    )
    store = ResolutionsStore(runtime.db)
    ctx = handlers.Context(store=store, wake_relay=runtime.wake_relay)
    runtime.app.state.context = ctx
    runtime.use_outbox([RESOLUTIONS])
    for event_cls in (
        resolution_events.ResolutionCreated,
        resolution_events.ResolutionUpdated,
        resolution_events.ResolutionCompleted,
    ):
        runtime.broker.publisher(
            RESOLUTIONS_TOPIC,
            title=f"{RESOLUTIONS_TOPIC}:{event_cls.ce_type()}",
            description=(event_cls.__doc__ or "").strip(),
            schema=event_cls,
        )
    runtime.app.include_router(api.router)

    @runtime.on_startup
    async def prepare() -> None:
        await store.ensure_indexes()
        if settings.core.seed_demo and await store.get_conference(DEMO_CONFERENCE.id) is None:
            await seed_demo(ctx)
            runtime.log.info("demo_conference_seeded", conference_id=DEMO_CONFERENCE.id)

    return runtime


async def seed_demo(ctx: handlers.Context) -> None:
    """A clearly labelled demo set, so the report shows something after ``make run``."""
    try:
        await handlers.create_conference(ctx, DEMO_CONFERENCE)
    except DomainError:
        return
    for number, (sw, en, status, progress) in enumerate(_DEMO_TOPICS, start=1):
        spec = ResolutionSpec(
            number=number,
            title_sw=f"[DEMO] {sw}",
            title_en=f"[DEMO] {en}",
            lead_institution="e-GA",
            target_date=date(2025, 1, 31),
            status=status,
            progress=progress,
        )
        await handlers.create_resolution(ctx, DEMO_CONFERENCE.id, spec, actor="demo-seed")
