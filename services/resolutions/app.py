"""Resolutions service bootstrap: settings, runtime, store, context, routes, startup."""

from __future__ import annotations

from services.resolutions import api, demo, handlers
from services.resolutions.settings import ResolutionsSettings
from services.resolutions.store import RESOLUTIONS, MongoResolutionsStore
from shared.runtime import ServiceRuntime
from shared.topics import RESOLUTIONS as RESOLUTIONS_TOPIC
from shared.topics import RESOLUTIONS_NOTICES


def create_runtime(settings: ResolutionsSettings | None = None) -> ServiceRuntime:
    settings = settings or ResolutionsSettings()
    runtime = ServiceRuntime(
        "resolutions",
        settings,
        title="Mkutano resolutions",
        description="Conference resolutions (maazimio), progress updates with a timeline, "
        "and the implementation report. Publishes the public resolutions.v1 and the private "
        "notices for the notification service (resolutions.notices.v1).",
        # CSV imports are sent as text/csv, each route with its own bound
        # (api.CSV_MAX_BYTES, declared on the route); every other body is JSON, 64 KiB.
        non_json_paths=[r"^/api/v1/conferences/[^/]+/(resolutions|updates)/import$"],
        error_statuses=api.ERROR_STATUSES,
    )
    store = MongoResolutionsStore(runtime.db, signal=runtime.signal)
    ctx = handlers.Context(store=store)
    runtime.app.state.context = ctx
    runtime.use_outbox([RESOLUTIONS])
    runtime.publishes(RESOLUTIONS_TOPIC)
    # Private: the focal persons' contact details, for the notification service only.
    runtime.publishes(RESOLUTIONS_NOTICES)
    runtime.app.include_router(api.router)

    @runtime.on_startup
    async def prepare() -> None:
        await store.ensure_indexes()
        swept = await handlers.sweep_unfinished_imports(ctx)
        if swept:
            runtime.log.warning("unfinished_imports_removed", documents=swept)
        if settings.core.seed_demo:
            for conference_id in await demo.seed_demo(ctx):
                runtime.log.info("demo_conference_seeded", conference_id=conference_id)

    return runtime
