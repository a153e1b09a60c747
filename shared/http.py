"""The HTTP surface every service shares: error shape, limits, health, metrics, AsyncAPI."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import ApiError, DomainError, FieldProblem, api_error_of
from shared.logging import get_logger
from shared.metrics import Metrics

log = get_logger("http")
JSON_TYPES = {"application/json", "application/merge-patch+json"}
ReadinessCheck = Callable[[], Awaitable[tuple[str, bool]]]


# A route whose body may be larger than the service's bound (a CSV upload) says so in its
# OpenAPI: ``openapi_extra=body_limit(2 * MiB)``. The middleware enforces what it says.
BODY_LIMIT_KEY = "x-max-body-bytes"
KiB = 1024
MiB = 1024 * KiB


def body_limit(max_bytes: int) -> dict[str, int]:
    """``openapi_extra`` of a route that takes bodies up to ``max_bytes`` (documented there)."""
    return {BODY_LIMIT_KEY: max_bytes}


class BodyLimitMiddleware:
    """413 for bodies over a bound, 415 for non-JSON API writes.

    Every body is bounded: ``max_bytes`` (64 KiB), or the larger bound a route declares
    with ``body_limit()``. A declared ``Content-Length`` over the bound is refused before
    anything is read; a body without one (chunked) is read up to the bound and refused
    as soon as it passes it. The route gets the body only once it is whole and within
    its bound, so a body too large is always the 413 of the common error shape, never a
    framework's parse error.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = 64 * KiB,
        non_json_paths: list[str] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.non_json = [re.compile(p) for p in (non_json_paths or [])]
        self._route_limits: list[tuple[re.Pattern[str], frozenset[str], int]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length")
        has_body = declared not in (None, "0") or "transfer-encoding" in headers
        if not has_body:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self._limit_for(scope)
        if declared and declared.isdigit() and int(declared) > limit:
            await _send_error(send, _too_large(limit))
            return
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if (
            scope["method"] in ("POST", "PUT", "PATCH")
            and path.startswith("/api/")
            and media not in JSON_TYPES
            and not any(p.search(path) for p in self.non_json)
        ):
            await _send_error(
                send,
                ApiError(
                    415,
                    "unsupported_media_type",
                    "Send the body as application/json.",
                    fields=[FieldProblem(field="content-type", reason=f"got {media or 'none'!r}")],
                ),
            )
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await _send_error(send, _too_large(limit))
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)

    def _limit_for(self, scope: Scope) -> int:
        """The route's declared bound (``body_limit``), else the service's."""
        if self._route_limits is None:
            app = scope.get("app")
            self._route_limits = _declared_limits(app) if isinstance(app, FastAPI) else []
        for pattern, methods, limit in self._route_limits:
            if scope["method"] in methods and pattern.match(scope["path"]):
                return limit
        return self.max_bytes


def _declared_limits(app: FastAPI) -> list[tuple[re.Pattern[str], frozenset[str], int]]:
    from fastapi import routing
    from starlette.routing import compile_path

    limits = []
    for route in routing.iter_route_contexts(app.routes):
        extra = getattr(route.original_route, "openapi_extra", None) or {}
        if BODY_LIMIT_KEY in extra:
            pattern, _, _ = compile_path(route.path_format)
            limits.append((pattern, frozenset(route.methods or ()), int(extra[BODY_LIMIT_KEY])))
    return limits


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"The body is larger than {limit} bytes.",
        fields=[FieldProblem(field="body", reason=f"at most {limit} bytes")],
    )


async def _send_error(send: Send, error: ApiError) -> None:
    response = JSONResponse(error.body(), status_code=error.status, headers=error.headers)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - never called for a response
    return {"type": "http.disconnect"}


# A 422 lists at most this many fields, each name and reason at most MAX_ECHO characters
# (a name can be a key the client sent): the answer does not grow with the input.
MAX_FIELD_PROBLEMS = 50
MAX_ECHO = 200


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis says so)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return clip(".".join(parts) or "body")


def _reason(err: dict[str, Any]) -> str:
    if err.get("type") == "extra_forbidden":
        return "unknown field"
    if err.get("type") == "missing":
        return "required"
    msg = str(err.get("msg", "invalid"))
    return clip(msg.removeprefix("Value error, "))


def install_error_handlers(app: FastAPI, statuses: Mapping[str, int] | None = None) -> None:
    """Render every error in the common shape; never leak a stack trace.

    ``statuses`` maps the service's domain error codes to HTTP statuses (see
    ``shared.errors.status_for`` for the codes it need not list).
    """

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        err = api_error_of(exc, statuses)
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            err = ApiError(
                400,
                "malformed_json",
                "The body is not valid JSON.",
                fields=[FieldProblem(field="body", reason="malformed JSON")],
            )
            return JSONResponse(err.body(), status_code=400)
        fields = [
            FieldProblem(field=_field_name(tuple(e["loc"])), reason=_reason(e))
            for e in errors[:MAX_FIELD_PROBLEMS]
        ]
        message = "Some fields are missing or invalid."
        if len(errors) > MAX_FIELD_PROBLEMS:
            message += f" The first {MAX_FIELD_PROBLEMS} of {len(errors)} are listed."
        err = ApiError(422, "validation_error", message, fields=fields)
        return JSONResponse(err.body(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated"}
        err = ApiError(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))
        return JSONResponse(err.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", path=request.url.path, error=type(exc).__name__, exc_info=exc)
        err = ApiError(500, "internal_error", "Something went wrong on our side.")
        return JSONResponse(err.body(), status_code=500)


class MetricsMiddleware:
    """Counts each HTTP request and its latency by route template and status.

    Plain ASGI: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware("http")``) runs the
    rest of the stack in another task with memory streams between, per request."""

    def __init__(self, app: ASGIApp, *, root: FastAPI, metrics: Metrics) -> None:
        self.app = app
        self.root = root
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        before = dict(scope)  # as routing first sees it (a mount rewrites the path)
        status = 500  # unless an answer starts: an exception is answered 500 further out

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            template = route_template(self.root, scope, before)
            method = scope["method"]
            self.metrics.http_requests.labels(template, method, str(status)).inc()
            self.metrics.http_latency.labels(template, method).observe(time.perf_counter() - start)


def install_metrics(
    app: FastAPI,
    metrics: Metrics,
    before_scrape: Callable[[], Awaitable[Any]] | None = None,
) -> None:
    """HTTP request count and latency by route template (not by raw path: no ids).

    ``before_scrape`` refreshes the gauges that describe state elsewhere (outbox, lag).
    """

    app.add_middleware(MetricsMiddleware, root=app, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        if before_scrape is not None:
            await before_scrape()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def route_template(app: FastAPI, scope: Scope, before: Scope | None = None) -> str:
    """The template of the route that answered (``/api/v1/events/{event_id}``), or
    ``"unmatched"``.

    FastAPI's router names its own routes in ``scope["route"]``, but not Starlette routes
    and mounts (``/openapi.json``, the Swagger UI assets): those are matched again here,
    against ``before``, the request's scope before routing changed it.
    """
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return route.path
    for candidate in app.router.routes:
        match, _ = candidate.matches(before or scope)
        if match is Match.FULL:
            path = getattr(candidate, "path", None)
            if path is None:
                break
            return f"{path}/{{path}}" if isinstance(candidate, Mount) else path
    return "unmatched"


def install_health(app: FastAPI, checks: list[ReadinessCheck]) -> None:
    """``/health/live``: the process answers. ``/health/ready``: its dependencies answer."""

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"])
    async def ready() -> JSONResponse:
        results = {}
        for check in checks:
            try:
                name, ok = await check()
            except Exception:
                name, ok = getattr(check, "__name__", "check"), False
            results[name] = "ok" if ok else "down"
        status = 200 if all(v == "ok" for v in results.values()) else 503
        return JSONResponse(
            {"status": "ok" if status == 200 else "not_ready", "checks": results},
            status_code=status,
        )


def install_asyncapi(app: FastAPI, document: Callable[[], dict[str, Any]]) -> None:
    @app.get("/asyncapi", tags=["contracts"], summary="AsyncAPI 3.0 document of this service")
    async def asyncapi() -> JSONResponse:
        return JSONResponse(document())

    @app.get("/asyncapi.yaml", include_in_schema=False)
    async def asyncapi_yaml() -> PlainTextResponse:
        import yaml

        return PlainTextResponse(yaml.safe_dump(document(), sort_keys=False))


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<link rel="stylesheet" href="/docs/mkutano.css">
<link rel="icon" type="image/png" href="/docs/static/favicon.png">
</head>
<body>
<main id="swagger-ui" data-openapi-url="{openapi_url}"></main>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

# Ours, next to this module: the set-up script and the corrections to Swagger UI's styles
# that make the page pass axe-core (tests/e2e/test_docs_page.py).
DOCS_INIT = "static/docs.js"
DOCS_CSS = "static/docs.css"


def install_docs(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """OpenAPI at ``/docs`` with Swagger UI served from this process, not from a CDN.

    The e-GA networks (and CI here) do not reach public CDNs, so FastAPI's default page
    would render blank; the assets (Swagger UI 5, which reads OpenAPI 3.1) come from the
    ``fastapi-offline`` package. Its
    set-up is a script of its own (``/docs/init.js``), not inline, so the page carries
    the same Content-Security-Policy as every other page (``script-src 'self'``).

    The page meets the accessibility standard of every other page (axe-core, WCAG 2.2
    AA): ``/docs/mkutano.css`` corrects Swagger UI's contrast and target sizes, and the
    set-up script's plugin (Swagger UI's ``wrapComponents``) its heading levels, the
    deep link nested in each operation's button and the servers drop-down without a
    label. Nothing of Swagger UI's own files is changed.
    """
    import html
    from pathlib import Path

    import fastapi_offline
    from fastapi.staticfiles import StaticFiles

    assets = Path(fastapi_offline.__file__).parent / "static"
    here = Path(__file__).parent
    app.mount("/docs/static", StaticFiles(directory=assets), name="swagger-ui")
    page = DOCS_PAGE.format(title=html.escape(app.title), openapi_url=html.escape(openapi_url))
    init = (here / DOCS_INIT).read_text(encoding="utf-8")
    css = (here / DOCS_CSS).read_text(encoding="utf-8")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return HTMLResponse(page)

    @app.get("/docs/init.js", include_in_schema=False)
    async def docs_init() -> Response:
        return Response(init, media_type="text/javascript")

    @app.get("/docs/mkutano.css", include_in_schema=False)
    async def docs_css() -> Response:
        return Response(css, media_type="text/css")


def install_openapi_errors(app: FastAPI) -> None:
    """Document the answers every route can give in the common error shape.

    The middleware answers 413 and 415 before a route runs, malformed JSON is 400 and
    rate-limited routes answer 429: none of these is visible to FastAPI's generator, so
    they are added here, each pointing at the one ``ErrorResponse`` schema.
    """
    from fastapi.openapi.utils import get_openapi

    from shared.errors import ErrorResponse

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in error_schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault("ErrorResponse", error_schema)
        ref = {
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            }
        }
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                if "requestBody" in operation:
                    for status, text in (
                        ("400", "Malformed body"),
                        ("413", "Body too large"),
                        ("415", "Unsupported media type"),
                    ):
                        responses.setdefault(status, {"description": text, **ref})
                if path.startswith("/api/") and method in ("post", "put", "patch"):
                    responses.setdefault("429", {"description": "Too many requests", **ref})
        document_security(app, schema)
        schema["info"]["license"] = LICENSE
        schema["servers"] = [
            {"url": "/", "description": "This service's own origin (dev: http://127.0.0.1:800x)"}
        ]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


LICENSE = {"name": "MIT", "identifier": "MIT"}
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`mk_…`) or a JWT from the identity provider.",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same API key, in a header of its own.",
    },
}


def _dependencies(route: Any) -> list[Any]:
    """Every dependency callable of a route, nested ones included."""
    found: list[Any] = []
    stack = list(getattr(getattr(route, "dependant", None), "dependencies", []))
    while stack:
        dependency = stack.pop()
        found.append(dependency.call)
        stack.extend(dependency.dependencies)
    return found


def _roles_of(route: Any) -> tuple[str, ...] | None:
    """The roles a route's dependencies require (``require_roles``), or None if public."""
    for call in _dependencies(route):
        roles = getattr(call, "mkutano_roles", None)
        if roles is not None:
            return tuple(roles)
    return None


def _is_rate_limited(route: Any) -> bool:
    return any(getattr(call, "mkutano_rate_limited", False) for call in _dependencies(route))


def document_security(app: FastAPI, schema: dict[str, Any]) -> None:
    """Name the credential of every operation, and the 401/403 a protected one answers.

    A route guarded by ``require_roles`` takes an API key or a JWT; every other operation
    says explicitly that it takes none (``security: []``): participants' self-service
    authenticates with its own ``X-Manage-Token`` header parameter.
    """
    from fastapi import routing

    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    ref = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    }
    paths = schema.get("paths", {})
    # Routes of included routers come wrapped; FastAPI's generator walks them like this.
    for route in routing.iter_route_contexts(app.routes):
        if not isinstance(route.original_route, routing.APIRoute) or not route.include_in_schema:
            continue
        item = paths.get(route.path_format)
        if item is None:
            continue
        roles = _roles_of(route)
        limited = _is_rate_limited(route)
        for method in route.methods:
            operation = item.get(method.lower())
            if operation is None:
                continue
            if limited:
                operation.setdefault("responses", {}).setdefault(
                    "429", {"description": "Too many requests; see Retry-After", **ref}
                )
            if roles is None:
                operation.setdefault("security", [])
                continue
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", {"description": "No valid API key or token", **ref})
            responses.setdefault(
                "403", {"description": f"Needs one of the roles: {', '.join(roles)}", **ref}
            )
    for item in paths.values():
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation.setdefault("security", [])
