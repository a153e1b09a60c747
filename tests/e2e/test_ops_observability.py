"""Observability of the running services: /metrics, health, /docs, /asyncapi, admin status."""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.topics import REGISTRATION
from tests.helpers import TopicReader, create_event, participant
from tests.stack import wait_until

pytestmark = pytest.mark.e2e

REGISTERED = "tz.go.ega.registration.ParticipantRegistered.v2"
# Notification acts on the private notice of a registration, not on its public event.
NOTICE = "tz.go.ega.registration.ParticipantRegisteredNotice.v1"


def promtool() -> str:
    """Prometheus's own linter: on PATH, or where `make deps-promtool` puts it."""
    found = shutil.which("promtool") or shutil.which(
        "promtool", path=str(Path(sys.executable).parent)
    )
    if not found:
        pytest.fail("promtool not found: `make deps-promtool` installs it (make test does)")
    return found


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of a /metrics page as {(name, sorted labels): value}."""
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(f"{url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        v
        for (n, lbl), v in samples.items()
        if n == name and all(dict(lbl).get(k) == want for k, want in labels.items())
    )


async def test_a_registration_shows_in_the_metrics_of_both_services(platform) -> None:
    before_reg = await scrape(platform.registration.url)
    before_notif = await scrape(platform.notification.url)
    event = await create_event(platform.registration.url, platform.admin_headers)
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        r = await client.post(f"/api/v1/events/{event['id']}/registrations", json=participant())
    assert r.status_code == 201, r.text

    published = "mkutano_events_published_total"
    after_reg = await wait_until(
        lambda: _grown(platform.registration.url, published, before_reg, type=REGISTERED),
        timeout=15,
        message="ParticipantRegistered counted as published on registration",
    )
    # HTTP by route template (no ids in labels) and latency.
    route = "/api/v1/events/{event_id}/registrations"
    assert value(after_reg, "mkutano_http_requests_total", route=route, status="201") >= 1
    assert value(after_reg, "mkutano_http_request_duration_seconds_count", route=route) >= 1
    assert not any(event["id"] in dict(lbl).get("route", "") for _, lbl in after_reg)
    # The outbox gauges are there; the backlog drains back to what it was.
    assert ("mkutano_outbox_backlog", ()) in after_reg
    assert ("mkutano_outbox_oldest_pending_age_seconds", ()) in after_reg

    after_notif = await wait_until(
        lambda: _grown(
            platform.notification.url,
            "mkutano_events_consumed_total",
            before_notif,
            type=NOTICE,
            outcome="applied",
        ),
        timeout=15,
        message="ParticipantRegisteredNotice counted as consumed on notification",
    )
    sent = await wait_until(
        lambda: _grown(
            platform.notification.url,
            "mkutano_notifications_total",
            before_notif,
            channel="email",
            outcome="sent",
        ),
        timeout=15,
        message="a confirmation email counted as sent",
    )
    assert value(sent, "mkutano_notifications_total", channel="email", outcome="sent") >= 1
    # Lag per assigned partition of the notification consumer group on registration.v1.
    lag_rows = [
        dict(lbl)
        for (n, lbl) in after_notif
        if n == "mkutano_consumer_lag" and dict(lbl).get("topic") == "registration.v1"
    ]
    assert lag_rows, "consumer lag gauges for registration.v1"
    assert ("mkutano_dead_lettered_total", ()) in after_notif


async def _grown(url: str, name: str, before, **labels: str):
    now = await scrape(url)
    return now if value(now, name, **labels) > value(before, name, **labels) else None


async def test_admin_status_shows_outbox_and_consumer_lag(platform) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(
            f"{platform.notification.url}/api/v1/admin/status", headers=platform.admin_headers
        )
        assert r.status_code == 200, r.text
        status = r.json()
        assert status["service"] == "notification"
        assert status["outbox"]["enabled"] is True and status["outbox"]["backlog"] >= 0
        (group,) = [g for g in status["consumers"] if "registration.v1" in g["topics"]]
        assert isinstance(group["partitions"], list) and group["lag"] >= 0
        assert {p["topic"] for p in group["partitions"]} <= set(group["topics"])
        assert "registration.v1" in {p["topic"] for p in group["partitions"]}
        r = await client.get(f"{platform.notification.url}/api/v1/admin/status")
        assert r.status_code == 401


async def test_health_live_and_ready_shapes(platform) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for svc in (platform.registration, platform.notification, platform.resolutions):
            live = await client.get(f"{svc.url}/health/live")
            assert live.status_code == 200 and live.json() == {"status": "ok"}
            ready = await client.get(f"{svc.url}/health/ready")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ok", "checks": {"mongodb": "ok", "kafka": "ok"}}


async def test_docs_use_only_local_assets_and_asyncapi_is_3_0(platform) -> None:
    async with httpx.AsyncClient(base_url=platform.resolutions.url, timeout=5) as client:
        page = await client.get("/docs")
        assert page.status_code == 200 and "swagger-ui" in page.text
        refs = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text)
        assert refs, page.text
        for ref in refs:
            assert ref.startswith("/"), f"/docs must not load {ref} from elsewhere"
            asset = await client.get(ref)
            assert asset.status_code == 200, ref
        spec = (await client.get("/asyncapi")).json()
        assert spec["asyncapi"].startswith("3.")
        assert any("resolutions.v1" in str(ch.get("address")) for ch in spec["channels"].values())


async def test_the_callers_traceparent_reaches_the_kafka_record(platform) -> None:
    """Tracing is off by default, yet the caller's trace id flows to the record."""
    trace_id = secrets.token_hex(16)
    caller = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    event = await create_event(platform.registration.url, platform.admin_headers)
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        r = await client.post(
            f"/api/v1/events/{event['id']}/registrations",
            json=participant(),
            headers={"traceparent": caller},
        )
    assert r.status_code == 201, r.text
    async with TopicReader(platform.kafka.bootstrap, [REGISTRATION]) as reader:
        (record,) = await reader.wait_for(
            lambda rec: rec.key == r.json()["id"] and rec.ce_type == REGISTERED
        )
    assert record.headers["traceparent"].split("-")[1] == trace_id


async def test_metrics_pass_promtool_with_the_standard_collectors_and_every_route_named(
    platform,
) -> None:
    for name, service in platform.services.items():
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            for path in ("/openapi.json", "/docs", "/asyncapi", "/docs/static/swagger-ui.css"):
                assert (await client.get(path)).status_code == 200, (name, path)
            text = (await client.get("/metrics")).text
        families = {f.name for f in text_string_to_metric_families(text)}
        for standard in (
            "process_cpu_seconds",
            "process_resident_memory_bytes",
            "process_open_fds",
            "python_info",
            "python_gc_objects_collected",
        ):
            assert standard in families, f"{name}: no {standard}"
        samples = await scrape(service.url)
        for route in ("/openapi.json", "/docs", "/asyncapi", "/docs/static/{path}"):
            assert value(samples, "mkutano_http_requests_total", route=route) >= 1, (name, route)
        checked = await asyncio.to_thread(
            subprocess.run,
            [promtool(), "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert checked.returncode == 0, f"{name}: {checked.stdout}{checked.stderr}"
