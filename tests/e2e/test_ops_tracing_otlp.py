"""Tracing over OTLP, as a collector sees it: the real registration and notification
services, configured with the standard OTEL_* variables only, export their spans to a
small OTLP/HTTP receiver on 127.0.0.1 (protobuf decoded with opentelemetry-proto); one
registration is one trace from the HTTP request to the SMTP send."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.e2e.test_notification_resilience import group_at_end
from tests.helpers import create_event, participant
from tests.stack import unique_suffix, wait_until

pytestmark = pytest.mark.e2e

REGISTRATION_NAME = "mkutano-registration-otlp-test"
NOTIFICATION_NAME = "mkutano-notification-otlp-test"
SPAN_KIND = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    attributes: dict[str, str]


class OtlpReceiver:
    """``POST /v1/traces`` (OTLP/HTTP, protobuf): keeps every span it receives."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.receive(self.path, body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"

    def receive(self, path: str, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    spans.append(
                        ReceivedSpan(
                            service=resource.get("service.name", ""),
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            name=s.name,
                            kind=SPAN_KIND.get(s.kind, str(s.kind)),
                            attributes={a.key: a.value.string_value for a in s.attributes},
                        )
                    )
        with self._lock:
            self.paths.append(path)
            self.spans.extend(spans)

    def received(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def _ancestors(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    by_id = {s.span_id: s for s in spans}
    chain = []
    while span.parent_id and span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


async def test_one_registration_is_one_trace_from_the_request_to_the_smtp_send(
    start_service, kafka, admin_key, otlp: OtlpReceiver
) -> None:
    otel = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,  # the base URL: /v1/traces is added
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s (the default is 5 s)
    }
    registration = await start_service(
        "registration", db_suffix=unique_suffix(), OTEL_SERVICE_NAME=REGISTRATION_NAME, **otel
    )
    await start_service(
        "notification",
        db_suffix=unique_suffix(),
        NOTIFICATION_CONSUMER_GROUP=await group_at_end(kafka.bootstrap),
        OTEL_SERVICE_NAME=NOTIFICATION_NAME,
        **otel,
    )
    event = await create_event(registration.url, {"Authorization": f"Bearer {admin_key}"})
    async with httpx.AsyncClient(base_url=registration.url, timeout=10) as client:
        r = await client.post(f"/api/v1/events/{event['id']}/registrations", json=participant())
        assert r.status_code == 201, r.text
        # Probes are not traced.
        assert (await client.get("/health/ready")).status_code == 200
    route = "HTTP POST /api/v1/events/{event_id}/registrations"

    def the_trace() -> list[ReceivedSpan] | None:
        spans = otlp.received()
        servers = [s for s in spans if s.name == route and s.service == REGISTRATION_NAME]
        if not servers:
            return None
        trace_id = servers[-1].trace_id
        mine = [s for s in spans if s.trace_id == trace_id]
        sent = [s for s in mine if s.name == "email send" and s.service == NOTIFICATION_NAME]
        if not sent:
            return None
        # Parents end after their children, so they are exported later: wait for the
        # whole chain up to the request, not only for the send.
        chain = _ancestors(sent[0], mine)
        return mine if chain and chain[-1].name == route else None

    spans = await wait_until(
        the_trace,
        timeout=30,
        message=lambda: f"received {sorted({(s.service, s.name) for s in otlp.received()})}",
    )
    assert set(otlp.paths) == {"/v1/traces"}
    (server,) = [s for s in spans if s.name == route]
    assert server.kind == "server" and server.parent_id == ""
    (send,) = [s for s in spans if s.name == "email send"]
    # One unbroken chain: SMTP send ← consumer ← Kafka publish ← … ← the HTTP request.
    chain = _ancestors(send, spans)
    assert chain and chain[-1] == server, [(s.service, s.name) for s in chain]
    kinds = {(s.service, s.kind) for s in chain}
    assert (NOTIFICATION_NAME, "consumer") in kinds and (REGISTRATION_NAME, "producer") in kinds
    # MongoDB commands are spans of the same trace, in both services.
    mongo = [s for s in spans if s.attributes.get("db.system") == "mongodb"]
    assert {s.service for s in mongo} == {REGISTRATION_NAME, NOTIFICATION_NAME}
    assert all(s.kind == "client" for s in mongo)
    # No health probe became a trace.
    everything = otlp.received()
    assert not [s for s in everything if "/health" in s.name or "/metrics" in s.name]
    # Nor did the background polling: every MongoDB span exported belongs to some work.
    assert all(s.parent_id for s in everything if s.attributes.get("db.system") == "mongodb")
