"""OpenTelemetry tracing: HTTP request → outbox → Kafka ``traceparent`` header → consumer.

Off by default (``OTEL_EXPORTER=none``): no spans are exported, but an incoming W3C
``traceparent`` still flows through, so a caller's trace id reaches the Kafka records and
the consumers' log lines. ``OTEL_EXPORTER=console`` prints spans (debugging);
``OTEL_EXPORTER=otlp`` sends them to ``OTEL_EXPORTER_OTLP_ENDPOINT`` and needs the
``opentelemetry-exporter-otlp-proto-http`` package installed in the image.

Log lines carry ``trace_id``/``span_id``: they are bound with structlog's context
variables, which ``shared.logging`` merges into every line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Literal

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logging import get_logger

log = get_logger("tracing")
_PROPAGATOR = TraceContextTextMapPropagator()
TRACER_NAME = "mkutano"


class TracingSettings(BaseSettings):
    """``OTEL_EXPORTER`` (none|console|otlp), ``OTEL_EXPORTER_OTLP_ENDPOINT``."""

    model_config = SettingsConfigDict(env_prefix="OTEL_", extra="ignore")

    exporter: Literal["none", "console", "otlp"] = "none"
    exporter_otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"


def configure_tracing(service: str, settings: TracingSettings | None = None) -> bool:
    """Install a tracer provider exporting as configured; False when tracing is off."""
    settings = settings or TracingSettings()
    if settings.exporter == "none":
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    exporter: Any
    if settings.exporter == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(
                "otlp_exporter_missing", hint="pip install opentelemetry-exporter-otlp-proto-http"
            )
            return False
        exporter = OTLPSpanExporter(endpoint=settings.exporter_otlp_endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": f"mkutano-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None outside any trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_from(traceparent: str | None) -> otel_context.Context | None:
    """The parent context named by a ``traceparent`` value (None if absent or invalid)."""
    if not traceparent:
        return None
    ctx = _PROPAGATOR.extract({"traceparent": traceparent})
    span_context = trace.get_current_span(ctx).get_span_context()
    return ctx if span_context.is_valid else None


def trace_ids(span: Span | None = None) -> dict[str, str]:
    """``trace_id``/``span_id`` (hex) of a span (default: the current one), for log lines."""
    sc = (span or trace.get_current_span()).get_span_context()
    if not sc.is_valid:
        return {}
    return {"trace_id": format(sc.trace_id, "032x"), "span_id": format(sc.span_id, "016x")}


@contextlib.contextmanager
def span(
    name: str,
    *,
    traceparent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, Any] | None = None,
) -> Iterator[Span]:
    """A span, child of ``traceparent`` if given (else of the current span), whose ids
    are bound to the log lines written inside it."""
    parent = context_from(traceparent)
    with tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes
    ) as current:
        # With tracing off the API's span is the caller's (non-recording) one: its ids
        # still reach the outbox, the Kafka headers and the log lines.
        with structlog.contextvars.bound_contextvars(**trace_ids(current)):
            try:
                yield current
            except Exception as exc:
                current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise


class TracingMiddleware:
    """A server span per HTTP request, child of the request's ``traceparent`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
        name = f"HTTP {scope['method']}"
        with span(
            name,
            traceparent=headers.get("traceparent"),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": scope["method"]},
        ) as current:

            async def send_with_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    current.set_attribute("http.response.status_code", message["status"])
                    route = scope.get("route")
                    if route is not None and hasattr(route, "path"):
                        current.update_name(f"HTTP {scope['method']} {route.path}")
                        current.set_attribute("http.route", route.path)
                await send(message)

            await self.app(scope, receive, send_with_status)


def traced_handler(
    handler: Callable[[Any], Awaitable[None]], group_id: str
) -> Callable[[Any], Awaitable[None]]:
    """Wrap a consumer handler in a consumer span, child of the record's ``traceparent``."""

    async def run(received: Any) -> None:
        headers = getattr(received, "headers", {}) or {}
        with span(
            f"consume {received.type}",
            traceparent=headers.get("traceparent"),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.consumer.group.name": group_id,
                "messaging.message.id": received.id,
                "cloudevents.event_type": received.type,
            },
        ):
            await handler(received)

    return run
