"""Registration service bootstrap: settings, store, runtime, routes, workers."""

from __future__ import annotations

import functools
import hashlib
from datetime import timedelta
from urllib.parse import urlsplit

from services.registration import api, demo, handlers, web, workers
from services.registration.consumers import register_consumers
from services.registration.domain import (
    INSTITUTION_LINK_PURPOSE,
    LINK_KEY_PURPOSE,
    InstitutionLinkSigner,
    LinkSigner,
    TicketSigner,
)
from services.registration.settings import RegistrationSettings
from services.registration.store import (
    CERTIFICATES,
    EVALUATION_RESPONSES,
    EVENTS,
    INSTITUTIONS,
    REGISTRATIONS,
    SIGN_INS,
    MongoInstitutionStore,
    MongoRegistrationStore,
)
from shared.runtime import ServiceRuntime
from shared.topics import REGISTRATION, REGISTRATION_NOTICES


def ticket_secret(settings: RegistrationSettings) -> bytes:
    """Production must set MKUTANO_TICKET_SECRET; dev and test derive a local one."""
    if settings.core.ticket_secret is not None:
        return settings.core.ticket_secret.get_secret_value().encode()
    if settings.core.env == "production":
        raise RuntimeError("MKUTANO_TICKET_SECRET must be set in production")
    admin = settings.core.bootstrap_admin_key
    seed = admin.get_secret_value() if admin else "mkutano-dev"
    return hashlib.sha256(f"ticket:{seed}".encode()).digest()


def link_secret(settings: RegistrationSettings) -> bytes:
    """The self-service links' key, derived from the ticket secret for that purpose alone."""
    return TicketSigner(ticket_secret(settings)).derive_key(LINK_KEY_PURPOSE)


def public_url(settings: RegistrationSettings) -> str:
    """The base URL of the self-service links: required in production (an email must
    not point at a developer's machine); dev and test use the local HTTP port."""
    url = settings.public_url
    if not url:
        if settings.core.env == "production":
            raise RuntimeError("REGISTRATION_PUBLIC_URL must be set in production")
        return f"http://127.0.0.1:{settings.http_port}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise RuntimeError(
            "REGISTRATION_PUBLIC_URL must be an http(s) URL with a host and no query or fragment"
        )
    return url.rstrip("/")


def create_runtime(settings: RegistrationSettings | None = None) -> ServiceRuntime:
    settings = settings or RegistrationSettings()
    runtime = ServiceRuntime(
        "registration",
        settings,
        title="Mkutano registration",
        description="Events catalogue, registration, capacity and waiting list. "
        "Publishes the public registration stream (registration.v1) and the private "
        "notices for the notification service (registration.notices.v1).",
        # The registration and self-service pages post HTML forms (no JavaScript needed).
        non_json_paths=[
            r"^/register/",
            r"^/my(/|$)",
            r"^/api/v1/events/[^/]+/registrations/import$",
            # institutions (issue 13 B): the institution pages' forms and the registry CSV
            r"^/institution(/|$)",
            r"^/api/v1/institutions/import$",
        ],
        error_statuses=api.ERROR_STATUSES,
    )
    store = MongoRegistrationStore(
        runtime.db,
        signal=runtime.signal,
        group_commit_window_s=settings.group_commit_window_ms / 1000,
        group_commit_max=settings.group_commit_max,
    )
    institutions = MongoInstitutionStore(runtime.db, signal=runtime.signal)
    context = handlers.Context(
        store=store,
        signer=TicketSigner(ticket_secret(settings)),
        notice_version=settings.privacy_notice_version,
        links=LinkSigner(link_secret(settings)),
        public_url=public_url(settings),
        institutions=institutions,
        institution_links=InstitutionLinkSigner(
            TicketSigner(ticket_secret(settings)).derive_key(INSTITUTION_LINK_PURPOSE)
        ),
        sign_in_validity=timedelta(seconds=settings.institution_link_validity_s),
        session_validity=timedelta(seconds=settings.institution_session_s),
    )
    runtime.app.state.context = context
    runtime.use_outbox(
        [EVENTS, REGISTRATIONS, INSTITUTIONS, SIGN_INS, CERTIFICATES, EVALUATION_RESPONSES]
    )
    runtime.publishes(REGISTRATION)
    # Private: contact details and tickets, for the notification service only.
    runtime.publishes(REGISTRATION_NOTICES)
    runtime.app.include_router(api.router)
    # Payments (issue 14): paid → confirmed; expired → cancelled, seat released.
    register_consumers(runtime, context, group_id=settings.payments_consumer_group)
    runtime.add_worker(
        "retention",
        functools.partial(
            workers.run_retention,
            context,
            retention_days=settings.retention_days,
            interval_s=settings.retention_interval_s,
        ),
    )
    runtime.add_worker(
        "after-events",
        functools.partial(
            workers.run_after_events,
            context,
            window_days=settings.after_event_window_days,
            interval_s=settings.after_event_interval_s,
        ),
    )
    runtime.app.include_router(web.router)

    @runtime.on_startup
    async def prepare() -> None:
        await store.ensure_indexes()
        await institutions.ensure_indexes()
        if settings.core.seed_demo:
            seeded = await demo.seed(context)
            if seeded:
                runtime.log.info("demo_event_seeded", event_id=seeded)
            institutions_added = await demo.seed_institutions(context)
            if institutions_added:
                runtime.log.info("demo_institutions_seeded", added=institutions_added)
        # A crash between taking a seat and writing its registration (or cancelling and
        # releasing) leaves a counter wrong: recount every open event before serving.
        repaired = await handlers.reconcile_all(context)
        runtime.log.info("seats_reconciled", events_repaired=repaired)

    return runtime
