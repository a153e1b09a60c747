"""OpenTelemetry tracing: HTTP request → outbox → Kafka ``traceparent`` header → consumer.

Configured with the standard OpenTelemetry variables:

- ``OTEL_TRACES_EXPORTER``: ``otlp``, ``console`` (debugging), ``none``, or a
  comma-separated list. Off (``none``) unless set: the specification's default is
  ``otlp``, but a service with no collector would then log a failed export every few
  seconds. Off, no spans are exported, but an incoming W3C ``traceparent`` still flows
  through, so a caller's trace id reaches the Kafka records and the consumers' log lines.
- ``OTEL_EXPORTER_OTLP_ENDPOINT``: the collector's base URL (``http://collector:4318``);
  the OTLP/HTTP exporter (installed with the project) appends ``/v1/traces``.
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` gives the full URL instead, and the other
  ``OTEL_EXPORTER_OTLP_*`` and ``OTEL_BSP_*`` variables apply as the SDK documents them.
- ``OTEL_SERVICE_NAME`` (default ``mkutano-<service>``), ``OTEL_RESOURCE_ATTRIBUTES``,
  ``OTEL_SDK_DISABLED``.

MongoDB commands are spans too (``opentelemetry-instrumentation-pymongo``, a command
listener, so the async client is covered), children of the request, consumer or relay
span they run in; commands outside any trace (the relay's and senders' polling, health
checks) are not exported. Health probes and ``/metrics`` are not traced.

Log lines carry ``trace_id``/``span_id``: they are bound with structlog's context
variables, which ``shared.logging`` merges into every line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

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
EXPORTERS = ("otlp", "console", "none")
# Probes and scrapes: frequent, and nobody follows them as traces.
UNTRACED_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})
_PYMONGO_SCOPE = "opentelemetry.instrumentation.pymongo"


class TracingSettings(BaseSettings):
    """The standard ``OTEL_*`` variables this module reads (the exporter reads the
    ``OTEL_EXPORTER_OTLP_*`` ones itself)."""

    model_config = SettingsConfigDict(env_prefix="OTEL_", extra="ignore")

    traces_exporter: str = "none"
    service_name: str | None = None
    sdk_disabled: bool = False
    # Before the standard names: ``OTEL_EXPORTER``. Read only to say it is not used.
    exporter: str | None = None

    def exporters(self) -> list[str]:
        names = [n.strip().lower() for n in self.traces_exporter.split(",") if n.strip()]
        unknown = [n for n in names if n not in EXPORTERS]
        if unknown:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER={self.traces_exporter!r}: {', '.join(unknown)} "
                f"not supported (one or more of {', '.join(EXPORTERS)})"
            )
        return [n for n in names if n != "none"]


def _batch_processor(exporter: Any) -> Any:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    class TracedWorkOnly(BatchSpanProcessor):
        """Drops MongoDB spans that belong to no trace (background polling, probes)."""

        def on_end(self, span: Any) -> None:
            scope = getattr(span, "instrumentation_scope", None)
            if span.parent is None and scope is not None and scope.name == _PYMONGO_SCOPE:
                return
            super().on_end(span)

    return TracedWorkOnly(exporter)


def configure_tracing(service: str, settings: TracingSettings | None = None) -> bool:
    """Install a tracer provider exporting as configured; False when tracing is off.

    Call it before the MongoDB client is created: the command listener applies to the
    clients created after it.
    """
    settings = settings or TracingSettings()
    if settings.exporter and settings.exporter != "none":
        log.warning(
            "otel_exporter_ignored",
            hint="OTEL_EXPORTER is not read; set OTEL_TRACES_EXPORTER",
            value=settings.exporter,
        )
    names = settings.exporters()
    if settings.sdk_disabled or not names:
        return False
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    resource = Resource.create({"service.name": settings.service_name or f"mkutano-{service}"})
    provider = TracerProvider(resource=resource)
    for name in names:
        if name == "console":
            provider.add_span_processor(_batch_processor(ConsoleSpanExporter()))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # No endpoint argument: the exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT.
            provider.add_span_processor(_batch_processor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    instrumentor = PymongoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
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
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
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
