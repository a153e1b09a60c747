"""Tracing: the HTTP request's trace reaches the outbox message, the Kafka headers, the
consumer's span and its log lines (in-memory span exporter, no servers)."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
import pytest
import structlog
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.contracts import IntegrationEvent
from shared.envelope import OutboxMessage, wrap
from shared.tracing import TracingMiddleware, span, traced_handler

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class SeatCounted(IntegrationEvent):
    """A test-only event (not registered with the envelope)."""

    domain: ClassVar[str] = "tests"
    topic: ClassVar[str] = "tests.v1"
    aggregate_field: ClassVar[str] = "event_id"
    event_id: str


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    # The API allows one global provider per process; only this module sets one.
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        pytest.skip("another tracer provider is installed in this process")
    return memory


def app_that_wraps(captured: list[OutboxMessage]) -> FastAPI:
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})
    app.add_middleware(TracingMiddleware)

    @app.post("/things/{thing_id}")
    async def create(thing_id: str) -> dict[str, Any]:
        captured.append(wrap(SeatCounted(event_id=thing_id), "tests"))
        return {"ok": True}

    return app


async def post(app: FastAPI, path: str, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post(path, headers=headers)


async def test_request_trace_flows_to_outbox_headers_and_consumer(exporter) -> None:
    exporter.clear()
    captured: list[OutboxMessage] = []
    r = await post(app_that_wraps(captured), "/things/a1", {"traceparent": CALLER})
    assert r.status_code == 200
    (message,) = captured
    (server,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    # The server span continues the caller's trace and names the route template.
    assert format(server.context.trace_id, "032x") == CALLER_TRACE
    assert server.parent is not None and format(server.parent.span_id, "016x") == CALLER[36:52]
    assert server.name == "HTTP POST /things/{thing_id}"
    assert server.attributes["http.response.status_code"] == 200
    # The outbox message, and so the Kafka record's headers, carry the server span.
    assert message.traceparent == (f"00-{CALLER_TRACE}-{format(server.context.span_id, '016x')}-01")
    assert message.headers()["traceparent"] == message.traceparent
    assert OutboxMessage.from_document(message.to_document()).traceparent == message.traceparent

    seen: dict[str, Any] = {}

    async def handler(received: Any) -> None:
        seen.update(structlog.contextvars.get_contextvars())

    class Received:
        id = message.id
        type = message.type
        headers = message.headers()

    await traced_handler(handler, "tests-group")(Received())
    (consumer,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert consumer.context.trace_id == server.context.trace_id
    assert consumer.parent.span_id == server.context.span_id
    assert consumer.attributes["messaging.message.id"] == message.id
    # Log lines written by the handler carry the trace and span ids.
    assert seen["trace_id"] == CALLER_TRACE
    assert seen["span_id"] == format(consumer.context.span_id, "016x")


async def test_without_incoming_trace_a_new_one_starts(exporter) -> None:
    exporter.clear()
    captured: list[OutboxMessage] = []
    await post(app_that_wraps(captured), "/things/b2", {})
    (server,) = exporter.get_finished_spans()
    assert server.parent is None
    assert captured[0].traceparent.split("-")[1] == format(server.context.trace_id, "032x")


async def test_a_failing_handler_marks_its_span_as_error(exporter) -> None:
    exporter.clear()

    async def boom(_: Any) -> None:
        raise RuntimeError("no")

    class Received:
        id = "x"
        type = "t"
        headers = {"traceparent": CALLER}

    with pytest.raises(RuntimeError):
        await traced_handler(boom, "g")(Received())
    (failed,) = exporter.get_finished_spans()
    assert not failed.status.is_ok
    with span("outside"):
        pass
    assert wrap(SeatCounted(event_id="c"), "tests").traceparent is None


async def test_the_email_send_continues_the_trace_of_the_event_that_caused_it(exporter) -> None:
    from services.notification import handlers
    from services.notification.dispatcher import Dispatcher
    from services.notification.domain import Candidate, Intent
    from services.notification.settings import NotificationSettings
    from shared.metrics import Metrics
    from shared.timeutil import utcnow
    from tests.unit.fakes.notification import FakeEmail, FakeNotificationStore

    intent = Intent(
        "email",
        "asha@example.go.tz",
        "confirmation",
        "en",
        {
            "participant": {"full_name": "Asha"},
            "reference": "MK-TEST1-TEST2",
            "status": "confirmed",
            "event": {
                "code": "EGOV",
                "title_sw": "Mkutano",
                "title_en": "Conference",
                "venue": "AICC",
                "city": "Arusha",
                "starts_at": "2025-02-11T05:00:00Z",
                "ends_at": "2025-02-13T14:00:00Z",
            },
            "ticket": None,
            "waitlist_position": None,
            "registration_id": "r1",
        },
    )
    with span("consume tz.go.ega.registration.ParticipantRegistered.v1", traceparent=CALLER):
        notification = handlers.new_notification(
            intent, cause_id="ce-1", cause_type="t", now=utcnow()
        )
    assert notification.traceparent.split("-")[1] == CALLER_TRACE

    store, mailbox = FakeNotificationStore(), FakeEmail()
    ctx = handlers.Context(
        store=store, settings=NotificationSettings(), email=mailbox, sms=None, metrics=Metrics("t")
    )
    dispatcher = Dispatcher(ctx, store.signal)
    await store.add([notification])
    claimed = await handlers.claim(ctx, Candidate(notification.id, "pending", 0.0))
    assert claimed is not None
    exporter.clear()
    await dispatcher.deliver(claimed)
    assert len(mailbox.sent) == 1 and store.notifications[notification.id].status == "sent"
    (send,) = [s for s in exporter.get_finished_spans() if s.name == "email send"]
    assert format(send.context.trace_id, "032x") == CALLER_TRACE
    assert send.kind == SpanKind.CLIENT
    assert send.attributes["mkutano.notification.id"] == notification.id


async def test_health_probes_and_scrapes_are_not_traced(exporter) -> None:
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})
    app.add_middleware(TracingMiddleware)
    for path in ("/health/live", "/health/ready", "/metrics", "/api/v1/things"):
        app.add_api_route(path, lambda: {"ok": True}, methods=["GET"])
    exporter.clear()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/health/live", "/health/ready", "/metrics", "/api/v1/things"):
            assert (await client.get(path, headers={"traceparent": CALLER})).status_code == 200
    assert [s.name for s in exporter.get_finished_spans()] == ["HTTP GET /api/v1/things"]


def test_the_standard_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from shared.tracing import TracingSettings

    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert TracingSettings().exporters() == []  # off unless set
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "mkutano-registration-eu")
    settings = TracingSettings()
    assert settings.exporters() == ["otlp", "console"]
    assert settings.service_name == "mkutano-registration-eu"
    with pytest.raises(ValueError, match="jaeger"):
        TracingSettings(traces_exporter="jaeger").exporters()
    # The endpoint is the collector's base URL; the exporter appends the signal's path.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert OTLPSpanExporter()._endpoint == "http://collector:4318/v1/traces"


def test_the_otlp_exporter_is_installed_with_the_project_and_in_the_images() -> None:
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    deps = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip() for d in deps}
    assert {
        "opentelemetry-exporter-otlp-proto-http",
        "opentelemetry-instrumentation-pymongo",
    } <= names
    for service in ("registration", "notification", "resolutions"):
        dockerfile = (repo / "deploy" / f"{service}.Dockerfile").read_text()
        # The images install exactly the project's dependencies, pinned by constraints.txt.
        assert "['project']['dependencies']" in dockerfile and "-c constraints.txt" in dockerfile


async def test_requests_are_counted_by_route_template_and_status_an_error_as_500() -> None:
    from shared.http import install_metrics
    from shared.metrics import Metrics

    metrics = Metrics("t")
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})
    install_metrics(app, metrics)

    async def thing(thing_id: str) -> dict:
        if thing_id == "boom":
            raise RuntimeError("a bug")
        return {"id": thing_id}

    app.add_api_route("/api/v1/things/{thing_id}", thing, methods=["GET"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for thing_id in ("a", "b", "boom"):
            await client.get(f"/api/v1/things/{thing_id}")
        assert (await client.get("/nowhere")).status_code == 404

    def count(route: str, status: str) -> float | None:
        labels = {"route": route, "method": "GET", "status": status}
        return metrics.registry.get_sample_value("mkutano_http_requests_total", labels)

    assert count("/api/v1/things/{thing_id}", "200") == 2
    assert count("/api/v1/things/{thing_id}", "500") == 1
    assert count("unmatched", "404") == 1
    latency = {"route": "/api/v1/things/{thing_id}", "method": "GET"}
    assert (
        metrics.registry.get_sample_value("mkutano_http_request_duration_seconds_count", latency)
        == 3
    )
