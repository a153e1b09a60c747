"""Staff console bootstrap: settings -> MongoDB (accounts and sessions) -> Context ->
HTTP (the common surface of ``shared.webapp``, its JSON API and its pages).

A frontend service keeps the platform's shape where it applies, but it has no stream,
no outbox and no Kafka: its readiness is its own MongoDB only (the services it calls may
come and go; each page says so when one does not answer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from services.console import (
    api,
    coordinators,
    editor,
    handlers,
    payments_pages,
    web,
    webhooks_pages,
)
from services.console.clients import HttpPayments, HttpServices, OidcProvider
from services.console.domain import TokenIssuer
from services.console.settings import ConsoleSettings
from services.console.store import MongoConsoleStore
from shared.auth import Authenticator
from shared.logging import configure_logging, get_logger
from shared.metrics import Metrics, collect_status
from shared.runtime import connect_mongo
from shared.webapp import AppParts, AppSpec, build_service_app

HERE = Path(__file__).parent
DESCRIPTION = (
    "The staff web application: organisers, registrars at the door and coordinators. "
    "A frontend over the services' public APIs: it owns no business data, only staff "
    "accounts and sessions, and signs the short-lived tokens the services verify."
)


def public_url(settings: ConsoleSettings) -> str:
    url = settings.public_url
    if not url:
        if settings.core.env == "production":
            raise RuntimeError("CONSOLE_PUBLIC_URL must be set in production")
        return f"http://127.0.0.1:{settings.http_port}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RuntimeError("CONSOLE_PUBLIC_URL must be an http(s) URL with a host")
    return url.rstrip("/")


def token_issuer(settings: ConsoleSettings) -> TokenIssuer:
    """Production signs with CONSOLE_SIGNING_KEY; dev and test derive a key."""
    options = {
        "issuer": public_url(settings),
        "audience": settings.token_audience,
        "ttl_s": settings.token_ttl_s,
    }
    if settings.signing_key is not None:
        return TokenIssuer.from_pem(settings.signing_key.get_secret_value().encode(), **options)
    if settings.core.env == "production":
        raise RuntimeError("CONSOLE_SIGNING_KEY must be set in production")
    admin = settings.core.bootstrap_admin_key
    seed = admin.get_secret_value() if admin else "mkutano-dev"
    return TokenIssuer.from_seed(f"console-jwt:{seed}".encode(), **options)


class ConsoleApp:
    """The console process: its app and how it runs."""

    def __init__(self, settings: ConsoleSettings) -> None:
        configure_logging("console", fmt=settings.log.format, level=settings.log.level)
        self.settings = settings
        self.log = get_logger("console")
        self.metrics = Metrics("console")
        self.mongo = connect_mongo(settings, "console")
        self.db = self.mongo[settings.mongo_db]
        key = settings.core.bootstrap_admin_key
        self.authenticator = Authenticator(key.get_secret_value() if key else None)
        self.store = MongoConsoleStore(self.db)
        self.services = HttpServices(
            {
                "registration": settings.registration_url,
                "notification": settings.notification_url,
                "resolutions": settings.resolutions_url,
                "payments": settings.payments_url,  # the payments page (payments_pages.py)
                "webhooks": settings.webhooks_url,
            }
        )
        self.payments = HttpPayments(settings.payments_url)
        base = public_url(settings)
        idp = None
        if settings.oidc_issuer:
            if not settings.oidc_client_id or settings.oidc_client_secret is None:
                raise RuntimeError("CONSOLE_OIDC_ISSUER needs CONSOLE_OIDC_CLIENT_ID and _SECRET")
            idp = OidcProvider(
                settings.oidc_issuer,
                settings.oidc_client_id,
                settings.oidc_client_secret.get_secret_value(),
                settings.oidc_scopes,
            )
        self.context = handlers.Context(
            store=self.store,
            services=self.services,
            issuer=token_issuer(settings),
            idle=timedelta(seconds=settings.session_idle_s),
            absolute=timedelta(seconds=settings.session_absolute_s),
            max_failed_sign_ins=settings.max_failed_sign_ins,
            lockout=timedelta(seconds=settings.lockout_s),
            idp=idp,
            oidc_redirect_uri=f"{base}/sign-in/oidc/callback",
            oidc_roles_claim=settings.oidc_roles_claim,
            payments=self.payments,
        )
        self.app, _ = build_service_app(
            AppSpec(
                "Mkutano console",
                DESCRIPTION,
                # Every page posts an HTML form; the JSON API is under /api/.
                non_json_paths=[r"^/(?!api/)"],
                error_statuses=api.ERROR_STATUSES,
            ),
            AppParts(
                db=self.db,
                metrics=self.metrics,
                authenticator=self.authenticator,
                status=self.status,
                readiness=[self._check_mongo],
                asyncapi=self.asyncapi_document,
                rate_limits=settings.rate_limits,
            ),
            self._lifespan,
        )
        self.app.state.context = self.context
        self.app.state.secure_cookies = base.startswith("https://")
        self.app.state.dashboard_refresh_s = settings.dashboard_refresh_s
        self.app.add_exception_handler(web.Refused, _refused)
        self.app.include_router(api.router)
        self.app.include_router(coordinators.router)
        self.app.include_router(web.router)
        self.app.include_router(editor.router)  # the event editor's categories and questions
        self.app.include_router(payments_pages.router)  # the organisers' payments page
        self.app.include_router(webhooks_pages.router)  # the admins' webhook subscriptions
        self.app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    async def status(self) -> dict[str, Any]:
        return await collect_status(self.metrics, None, [])

    def asyncapi_document(self) -> dict[str, Any]:
        """The console publishes and consumes nothing: an empty AsyncAPI document."""
        return {
            "asyncapi": "3.0.0",
            "info": {"title": "Mkutano console", "version": "1.0.0", "description": DESCRIPTION},
            "channels": {},
            "operations": {},
        }

    async def _check_mongo(self) -> tuple[str, bool]:
        try:
            await asyncio.wait_for(self.mongo.admin.command("ping"), 1.5)
            return "mongodb", True
        except Exception:
            return "mongodb", False

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not (await self._check_mongo())[1]:
            if loop.time() > deadline:
                raise RuntimeError("MongoDB not reachable at startup within 60s")
            await asyncio.sleep(0.5)
        await self.store.ensure_indexes()
        await self._dev_admin()
        self.log.info("service_started", port=self.settings.http_port)
        try:
            yield
        finally:
            await self.services.close()
            await self.payments.close()
            await self.mongo.close()
            self.log.info("service_stopped")

    async def _dev_admin(self) -> None:
        """The dev stack's admin account: its password is in the file run.py wrote."""
        path = self.settings.dev_admin_password_file
        if not path or self.settings.core.env == "production":
            return
        password = (await asyncio.to_thread(Path(path).read_text)).strip()
        created = await handlers.ensure_account(
            self.context,
            "admin",
            "Dev admin",
            ["admin", "organiser", "registrar", "coordinator", "auditor"],
            password,
        )
        if created:
            self.log.info("dev_admin_created", username="admin")

    def run(self) -> None:
        from shared.serving import serve

        serve(
            self.app,
            host=self.settings.http_host,
            port=self.settings.http_port,
            graceful_shutdown_s=self.settings.shutdown_grace_s,
        )


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, web.Refused)
    return exc.response


def create_app(settings: ConsoleSettings | None = None) -> ConsoleApp:
    return ConsoleApp(settings or ConsoleSettings())


# The name every service's bootstrap has (deploy/contracts.py builds each one with it).
create_runtime = create_app
