"""The HTTP face every service shares, built in one place.

``build_service_app`` makes a service's FastAPI application with the platform's common
surface, in the order the middleware must wrap each other: body limits, tracing
(outermost), the one error shape, metrics and status, self-hosted docs, API keys and
JWTs, the audit log, security headers and CORS, rate limits, health, AsyncAPI. A
service then adds only its own routers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure
from starlette.requests import Request
from starlette.responses import JSONResponse

from shared.apikeys import ApiKeyStore, install_api_keys
from shared.audit import install_audit
from shared.auth import Authenticator
from shared.errors import ApiError
from shared.http import (
    BodyLimitMiddleware,
    ReadinessCheck,
    install_asyncapi,
    install_docs,
    install_error_handlers,
    install_health,
    install_metrics,
    install_openapi_errors,
)
from shared.jwt_auth import jwt_lookup_from_settings
from shared.logging import get_logger
from shared.metrics import Metrics, install_status
from shared.ratelimit import RateLimiter
from shared.security import install_security
from shared.tracing import TracingMiddleware


@dataclass(frozen=True)
class AppSpec:
    """What a service says about its HTTP face."""

    title: str
    description: str
    version: str = "1.0.0"
    # Paths that take a body other than JSON (an HTML form, a CSV upload).
    non_json_paths: list[str] | None = None
    max_body_bytes: int = 64 * 1024
    # Domain error code -> HTTP status, for codes not covered by shared.errors.status_for.
    error_statuses: Mapping[str, int] | None = None


@dataclass(frozen=True)
class AppParts:
    """What the runtime hands the HTTP face: its database, metrics, auth and checks."""

    db: AsyncDatabase
    metrics: Metrics
    authenticator: Authenticator
    status: Callable[[], Awaitable[dict[str, Any]]]
    readiness: list[ReadinessCheck]
    asyncapi: Callable[[], dict[str, Any]]
    rate_limits: bool


def build_service_app(
    spec: AppSpec,
    parts: AppParts,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
) -> tuple[FastAPI, ApiKeyStore]:
    """The service's FastAPI app with the common surface, and its API key store."""
    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version=spec.version,
        lifespan=lifespan,
        docs_url=None,  # self-hosted Swagger UI (no CDN): install_docs
        # One tracing path (shared.tracing) whether an exporter is set or not; metrics
        # are Prometheus (shared.metrics) and logs structlog.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        openapi_url="/openapi.json",
    )
    app.state.authenticator = parts.authenticator
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=spec.max_body_bytes, non_json_paths=spec.non_json_paths
    )
    # Outermost: the request's span covers every other middleware and the route.
    app.add_middleware(TracingMiddleware)
    install_error_handlers(app, spec.error_statuses)
    # MongoDB unreachable (restart, failover): a clear, retryable 503, not a 500.
    app.add_exception_handler(ConnectionFailure, _dependency_unavailable)
    install_metrics(app, parts.metrics, before_scrape=parts.status)
    install_status(app, parts.status)
    install_docs(app)
    api_keys = install_api_keys(app, parts.db, parts.authenticator)
    jwt_lookup = jwt_lookup_from_settings()
    if jwt_lookup is not None:
        parts.authenticator.add_lookup(jwt_lookup)
    install_audit(app, parts.db)
    install_security(app)
    app.state.rate_limiter = RateLimiter(parts.db, enabled=parts.rate_limits)
    install_health(app, parts.readiness)
    install_asyncapi(app, parts.asyncapi)
    install_openapi_errors(app)
    return app, api_keys


async def _dependency_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """MongoDB did not answer: say so (503, Retry-After) so that clients retry later."""
    get_logger("http").warning(
        "dependency_unavailable", path=request.url.path, error=type(exc).__name__
    )
    err = ApiError(
        503,
        "service_unavailable",
        "The service cannot reach its database right now; retry shortly.",
        headers={"Retry-After": "2"},
    )
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)
