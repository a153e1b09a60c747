"""Registration service bootstrap: settings, store, runtime, routes."""

from __future__ import annotations

import hashlib
from datetime import datetime

from services.registration import api, handlers, privacy, web
from services.registration.domain import EventSpec, TicketSigner
from services.registration.settings import RegistrationSettings
from services.registration.store import EVENTS, REGISTRATIONS, RegistrationStore
from shared.runtime import ServiceRuntime
from shared.timeutil import EAT
from shared.topics import REGISTRATION

DEMO_EVENT = EventSpec(
    id="egov-2025",
    code="EGOV2025",
    title_sw="Mkutano wa Tano wa Mwaka wa Serikali Mtandao 2025",
    title_en="5th Annual e-Government Conference 2025",
    description_sw="Demo: mkutano wa mwaka wa Serikali Mtandao (data ya mfano).",
    description_en="Demo: the annual e-Government conference (sample data).",
    theme="Utekelezaji wa Jitihada za Serikali Mtandao na Ubunifu kwa Utoaji wa Huduma Bora kwa Umma",
    venue="Arusha International Conference Centre (AICC)",
    city="Arusha",
    starts_at=datetime(2025, 2, 11, 8, 0, tzinfo=EAT),
    ends_at=datetime(2025, 2, 13, 17, 0, tzinfo=EAT),
    capacity=1000,
    registration_opens_at=datetime(2024, 12, 1, 0, 0, tzinfo=EAT),
    registration_closes_at=None,
    state="published",
)


def ticket_secret(settings: RegistrationSettings) -> bytes:
    """Production must set MKUTANO_TICKET_SECRET; dev and test derive a local one."""
    if settings.core.ticket_secret is not None:
        return settings.core.ticket_secret.get_secret_value().encode()
    if settings.core.env == "production":
        raise RuntimeError("MKUTANO_TICKET_SECRET must be set in production")
    admin = settings.core.bootstrap_admin_key
    seed = admin.get_secret_value() if admin else "mkutano-dev"
    return hashlib.sha256(f"ticket:{seed}".encode()).digest()


def create_runtime(settings: RegistrationSettings | None = None) -> ServiceRuntime:
    settings = settings or RegistrationSettings()
    runtime = ServiceRuntime(
        "registration",
        settings,
        title="Mkutano registration",
        description="Events catalogue, registration, capacity and waiting list. "
        "Publishes the registration stream (registration.v1).",
        # The registration page posts an HTML form (works without JavaScript).
        non_json_paths=[r"^/register/"],
        error_statuses=api.ERROR_STATUSES,
    )
    store = RegistrationStore(runtime.db, signal=runtime.signal)
    context = handlers.Context(
        store=store,
        signer=TicketSigner(ticket_secret(settings)),
        notice_version=settings.privacy_notice_version,
        wake_relay=runtime.wake_relay,
    )
    runtime.app.state.context = context
    runtime.use_outbox([EVENTS, REGISTRATIONS])
    runtime.publishes(REGISTRATION)
    runtime.app.include_router(api.router)
    runtime.add_worker(
        "retention",
        privacy.retention_worker(context, settings.retention_days, settings.retention_interval_s),
    )
    runtime.app.include_router(web.router)

    @runtime.on_startup
    async def prepare() -> None:
        await store.ensure_indexes()
        if settings.core.seed_demo and await store.get_event(DEMO_EVENT.id) is None:
            from services.registration.domain import DomainError

            try:
                await handlers.create_event(context, DEMO_EVENT)
                runtime.log.info("demo_event_seeded", event_id=DEMO_EVENT.id)
            except DomainError:
                pass
        # A crash between taking a seat and writing its registration (or cancelling and
        # releasing) leaves a counter wrong: recount every open event before serving.
        repaired = await handlers.reconcile_all(context)
        runtime.log.info("seats_reconciled", events_repaired=repaired)

    return runtime
