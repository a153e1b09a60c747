"""How a service's HTTP server runs: which proxies it believes, how long it waits for a client.

**Forwarded headers.** ``X-Forwarded-For`` / ``X-Forwarded-Proto`` name the client only
when a proxy we run wrote them; anybody else can write any address there, and every
per-address rate limit would then count per invented address. So they are believed only
from the peers listed in ``FORWARDED_ALLOW_IPS`` (comma-separated addresses or networks,
e.g. the ingress controller's pod network ``10.42.0.0/16``); by default none, and then the
headers are ignored and the TCP peer is the client. Set it wherever a reverse proxy or an
ingress sits in front (docker-compose.yml, deploy/k8s/config.yaml); the dev stack sets
nothing, since nothing stands in front of it.

**Slow clients.** A connection that does not finish its request line and headers within
``HTTP_HEADER_TIMEOUT_S`` (10 s) is closed, however slowly it trickles bytes, and an idle
kept-alive connection after ``HTTP_KEEP_ALIVE_TIMEOUT_S`` (5 s); headers larger than
``HTTP_MAX_HEADER_BYTES`` (16 KiB) are refused with 400. uvicorn's own keep-alive timer
starts only after a first response, and any byte received stops it, so without the header
timer a socket opened and left half-written stays open for good.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from uvicorn.protocols.http.h11_impl import H11Protocol


class ServingSettings(BaseSettings):
    """``FORWARDED_ALLOW_IPS``, ``HTTP_HEADER_TIMEOUT_S``, ``HTTP_KEEP_ALIVE_TIMEOUT_S``,
    ``HTTP_MAX_HEADER_BYTES``."""

    model_config = SettingsConfigDict(extra="ignore")

    # Comma-separated IPs or CIDR networks of trusted proxies; empty: trust none.
    forwarded_allow_ips: str = ""
    http_header_timeout_s: float = Field(10.0, gt=0)
    http_keep_alive_timeout_s: int = Field(5, ge=1)
    http_max_header_bytes: int = Field(16 * 1024, ge=1024)

    def trusted_proxies(self) -> list[str]:
        return [p.strip() for p in self.forwarded_allow_ips.split(",") if p.strip()]


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers do not arrive in
    time. The timer runs from the connection's start, and again after each response,
    until a request's headers are complete; bytes trickling in do not reset it."""

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:  # still no complete request: give up on it
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a request's headers were read
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        self._arm_header_timer()  # the next request on this connection gets the same bound
        super().on_response_complete()


def uvicorn_config(
    app: Any,
    *,
    host: str,
    port: int,
    graceful_shutdown_s: float,
    settings: ServingSettings | None = None,
) -> uvicorn.Config:
    """The uvicorn configuration of every service."""
    settings = settings or ServingSettings()
    proxies = settings.trusted_proxies()
    protocol = type(
        "HeaderTimeoutH11Protocol",
        (HeaderTimeoutH11Protocol,),
        {"header_timeout_s": settings.http_header_timeout_s},
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(graceful_shutdown_s),
        http=protocol,
        h11_max_incomplete_event_size=settings.http_max_header_bytes,
        timeout_keep_alive=settings.http_keep_alive_timeout_s,
        # Explicit either way: left unset, uvicorn would trust 127.0.0.1 (or read its own
        # FORWARDED_ALLOW_IPS default) and apply X-Forwarded-For from any local process.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or [],
    )


def serve(
    app: Any,
    *,
    host: str,
    port: int,
    graceful_shutdown_s: float,
    settings: ServingSettings | None = None,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, then stop gracefully."""
    config = uvicorn_config(
        app, host=host, port=port, graceful_shutdown_s=graceful_shutdown_s, settings=settings
    )
    uvicorn.Server(config).run()
