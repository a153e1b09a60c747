"""Resolutions service bootstrap: settings, runtime, store, context, routes, startup."""

from __future__ import annotations

import functools
import hashlib
from datetime import timedelta
from urllib.parse import urlsplit

from services.resolutions import api, demo, handlers, web, workers
from services.resolutions.domain import FocalLinkSigner
from services.resolutions.settings import ResolutionsSettings
from services.resolutions.store import (
    REMINDERS,
    RESOLUTIONS,
    GridFSEvidenceStore,
    MongoResolutionsStore,
)
from shared.runtime import ServiceRuntime
from shared.topics import RESOLUTIONS as RESOLUTIONS_TOPIC
from shared.topics import RESOLUTIONS_NOTICES


def link_secret(settings: ResolutionsSettings) -> bytes:
    """The report links' key: RESOLUTIONS_LINK_SECRET, required in production; dev and
    test derive a local one."""
    if settings.link_secret is not None:
        return settings.link_secret.get_secret_value().encode()
    if settings.core.env == "production":
        raise RuntimeError("RESOLUTIONS_LINK_SECRET must be set in production")
    admin = settings.core.bootstrap_admin_key
    seed = admin.get_secret_value() if admin else "mkutano-dev"
    return hashlib.sha256(f"resolutions-report-link:{seed}".encode()).digest()


def public_url(settings: ResolutionsSettings) -> str:
    """The base URL of the report links: required in production (an email must not point
    at a developer's machine); dev and test use the local HTTP port."""
    url = settings.public_url
    if not url:
        if settings.core.env == "production":
            raise RuntimeError("RESOLUTIONS_PUBLIC_URL must be set in production")
        return f"http://127.0.0.1:{settings.http_port}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise RuntimeError(
            "RESOLUTIONS_PUBLIC_URL must be an http(s) URL with a host and no query or fragment"
        )
    return url.rstrip("/")


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
        non_json_paths=[
            r"^/api/v1/conferences/[^/]+/(resolutions|updates)/import$",
            r"^/api/v1/resolutions/[^/]+/updates/with-files$",
        ],
        # The report page's form (multipart, with evidence files) declares its own bound.
        error_statuses=api.ERROR_STATUSES,
    )
    store = MongoResolutionsStore(runtime.db, signal=runtime.signal)
    ctx = handlers.Context(
        store=store,
        links=FocalLinkSigner(link_secret(settings)),
        public_url=public_url(settings),
        link_validity=timedelta(days=settings.link_validity_days),
        evidence=GridFSEvidenceStore(runtime.db),
        evidence_max_bytes=settings.evidence_max_bytes,
        digest_recipients=tuple(settings.digest_recipients),
        digest_language=settings.digest_language,
        report_rate_per_min=settings.rate_report_per_address_per_min,
    )
    runtime.app.state.context = ctx
    runtime.use_outbox([RESOLUTIONS, REMINDERS])
    runtime.publishes(RESOLUTIONS_TOPIC)
    # Private: the focal persons' contact details, for the notification service only.
    runtime.publishes(RESOLUTIONS_NOTICES)
    runtime.app.include_router(api.router)
    runtime.app.include_router(web.router)
    runtime.add_worker(
        "chasing",
        functools.partial(workers.run_chasing, ctx, interval_s=settings.chase_interval_s),
    )

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
