"""Browser-facing protections: a CORS allow-list for frontends and security headers.

Frontends (web portals, TSMS) call the APIs from their own origins; only the origins
listed in ``MKUTANO_CORS_ORIGINS`` (comma-separated) may. HTML pages get headers that
stop framing, sniffing and inline script from elsewhere.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTML_HEADERS = {
    # Pages are self-contained: their own styles, images as data: URIs, no third-party script.
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
ALL_HEADERS = {"x-content-type-options": "nosniff"}


class SecuritySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MKUTANO_", extra="ignore")

    cors_origins: str = ""

    def origins(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


class SecurityHeadersMiddleware:
    """Adds ``nosniff`` to every answer and the page headers to every HTML answer,
    the Swagger UI page (``/docs``) included: it loads only scripts of its own origin."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.decode().lower() for k, _ in headers}
                content_type = next(
                    (
                        v.decode().lower()
                        for k, v in headers
                        if k.decode().lower() == "content-type"
                    ),
                    "",
                )
                extra = dict(ALL_HEADERS)
                if content_type.startswith("text/html"):
                    extra.update(HTML_HEADERS)
                for name, value in extra.items():
                    if name not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_security(app: FastAPI, settings: SecuritySettings | None = None) -> None:
    """CORS allow-list (none by default) and security headers."""
    settings = settings or SecuritySettings()
    app.add_middleware(SecurityHeadersMiddleware)
    origins = settings.origins()
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "If-Match",
                "X-Manage-Token",
                "X-API-Key",
            ],
            expose_headers=["ETag", "Retry-After", "Location"],
            max_age=600,
        )
