"""Webhook deliveries per second to a local receiver, against a plain loop.

A webhooks service (its own process, as in production) with one subscription to
``tz.go.ega.registration.*`` pointing at ``bench.receiver`` (uvicorn, its own process).
``n`` ``ParticipantRegistered`` events are put on ``registration.v1``; the clock runs
from the first to the last delivery the receiver got (and, end to end, from the first
event produced). The service consumes each event, records its delivery, claims it,
signs it and POSTs it, records the outcome, with at most ``per_subscription_in_flight``
(2) POSTs of one subscription at a time.

Baseline, in this process: the same bodies signed with the same library
(``domain.signature_header``, Standard Webhooks' HMAC-SHA256) and POSTed with the same
HTTP client (``adapters.HttpTransport``, httpx with the service's limits), the same 2 at
a time, to the same receiver (another path): no Kafka, no MongoDB.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from bench.common import create_event, wait_for
from bench.loadgen import post_registrations
from bench.stack import BenchStack
from deploy.embedded import LOCALHOST, Process, free_port, http_ok
from services.webhooks.adapters import HttpTransport
from services.webhooks.domain import new_secret, signature_header
from services.webhooks.settings import WebhooksSettings
from shared.contracts.registration import EventDetails, ParticipantContact, ParticipantRegistered
from shared.envelope import wrap
from shared.topics import REGISTRATION

IN_FLIGHT = WebhooksSettings().per_subscription_in_flight


def events(n: int) -> list[Any]:
    now = datetime.now(UTC)
    details = EventDetails(
        event_id="bench-webhooks",
        code="BENCHHOOKS",
        title_sw="Mkutano wa Serikali Mtandao (kipimo)",
        title_en="e-Government Conference (benchmark)",
        venue="AICC",
        city="Arusha",
        starts_at=now + timedelta(days=30),
        ends_at=now + timedelta(days=32),
    )
    out = []
    for i in range(n):
        event = ParticipantRegistered(
            registration_id=str(uuid.uuid4()),
            reference=f"MK-W{i:04d}-{secrets.token_hex(3).upper()[:5]}",
            event=details,
            participant=ParticipantContact(
                full_name="Asha Juma Mwinyi",
                email=f"hooks.{i}@bench.go.tz",
                phone="+255712345678",
                language="sw",
                institution="e-Government Authority",
                position="ICT Officer",
            ),
            status="confirmed",
            cadre="ict_officer",
            registered_at=now,
            ticket="tkt.signed.value",
        )
        out.append(wrap(event, "registration"))
    return out


async def produce(bootstrap: str, outbox: list[Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                REGISTRATION,
                m.value(),
                key=m.key.encode(),
                headers=[(k, v.encode()) for k, v in m.headers().items()],
            )
            for m in outbox
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def baseline(url: str, outbox: list[Any]) -> float:
    """Sign and POST every body, IN_FLIGHT at a time; returns the seconds taken."""
    transport = HttpTransport(WebhooksSettings())
    secret = new_secret(secrets.token_bytes(24))
    bodies = [(m.id, m.value().decode()) for m in outbox]
    sem = asyncio.Semaphore(IN_FLIGHT)
    failed = 0

    async def one(msg_id: str, body: str) -> None:
        nonlocal failed
        async with sem:
            at = datetime.now(UTC).replace(microsecond=0)
            headers = {
                "content-type": "application/cloudevents+json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(at.timestamp())),
                "webhook-signature": signature_header(msg_id, at, body, [secret]),
            }
            outcome = await transport.post(url, body.encode(), headers)
            failed += outcome.status_code != 204

    started = time.perf_counter()
    await asyncio.gather(*(one(i, b) for i, b in bodies))
    took = time.perf_counter() - started
    if failed:
        raise RuntimeError(f"the baseline's receiver refused {failed} posts")
    return took


def receiver(port: int, log_dir: Any) -> Process:
    import sys

    return Process(
        "receiver",
        [sys.executable, "-m", "bench.receiver", "--port", str(port)],
        log_path=log_dir / "receiver.log",
        ready=lambda: http_ok(f"http://{LOCALHOST}:{port}/stats"),
        ready_timeout=20,
        stop_timeout=5,
    )


def _joined(base: str, headers: dict[str, str], timeout_s: float = 180.0) -> None:
    """Wait until the consumer group holds every partition of its streams (on tansu,
    "ready" comes before the group's join; records produced before it were missed)."""
    from shared.topics import all_topics

    topics = set(WebhooksSettings().topics)
    partitions = sum(t.partitions for t in all_topics() if t.name in topics)

    def joined() -> bool:
        r = httpx.get(f"{base}/api/v1/admin/status", headers=headers, timeout=10)
        (group,) = r.json()["consumers"]
        rows = group["partitions"]
        return isinstance(rows, list) and len(rows) == partitions and group["lag"] == 0

    wait_for(joined, timeout_s, 0.5)


def run(n: int, timeout_s: float = 600.0) -> dict[str, Any]:
    with BenchStack("webhooks", sms=False) as stack:
        port = free_port()
        recv = receiver(port, stack.workdir / "logs")
        stack.servers["receiver"] = recv
        recv.start()
        stack.start_service("registration")
        stack.start_service("webhooks", LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
        base = stack.url("webhooks")
        r = httpx.post(
            f"{base}/api/v1/subscriptions",
            headers=stack.admin_headers,
            json={
                "url": f"http://{LOCALHOST}:{port}/hook",
                "event_types": ["tz.go.ega.registration.*"],
                "label": "bench receiver",
                "owner_email": "ict@bench.go.tz",
            },
            timeout=30,
        )
        r.raise_for_status()
        outbox = events(n)  # the baseline's bodies
        _joined(base, stack.admin_headers)

        def stats() -> dict[str, Any]:
            return httpx.get(f"http://{LOCALHOST}:{port}/stats", timeout=10).json()

        cpu_before = {k: v.get("cpu_s", 0.0) for k, v in stack.stats().items()}
        reg_url = stack.url("registration")
        event_id = create_event(reg_url, stack.admin_headers, capacity=n + 10)
        wait_for(lambda: stats().get("/hook", {}).get("count", 0) >= 1, 120, 0.25)
        httpx.get(f"http://{LOCALHOST}:{port}/stats?reset=1", timeout=10)  # EventPublished
        produced_at = time.time()
        load = post_registrations(
            reg_url,
            f"/api/v1/events/{event_id}/registrations",
            total=n,
            connections=10,
            prefix=f"w{secrets.token_hex(3)}",
            max_seconds=timeout_s,
        )
        n = n - load.non_201
        complete = True
        try:
            wait_for(lambda: stats().get("/hook", {}).get("count", 0) >= n, timeout_s, 0.25)
        except TimeoutError:
            complete = False
        hook = stats().get("/hook", {"count": 0, "first": produced_at, "last": produced_at})
        cpu = {
            k: round(v.get("cpu_s", 0.0) - cpu_before.get(k, 0.0), 2)
            for k, v in stack.stats().items()
        }
        base_s = asyncio.run(baseline(f"http://{LOCALHOST}:{port}/baseline", outbox))
        base_stats = stats().get("/baseline", {})
    service_s = max(1e-6, hook["last"] - hook["first"])
    service_rate = (hook["count"] - 1) / service_s if hook["count"] > 1 else 0.0
    base_rate = n / base_s
    out = {
        "events": n,
        "deliveries": hook["count"],
        "distinct_ids": hook.get("distinct_ids"),
        "complete": complete,
        "in_flight": IN_FLIGHT,
        "service": {
            "deliveries_per_s": round(service_rate, 1),
            "seconds": round(service_s, 2),
            "end_to_end_seconds": round(hook["last"] - produced_at, 2),
        },
        "baseline": {
            "deliveries_per_s": round(base_rate, 1),
            "seconds": round(base_s, 2),
            "received": base_stats.get("count"),
        },
        "ratio": round(service_rate / base_rate, 3) if base_rate else None,
        "cpu_s_by_process": cpu,
    }
    print(
        f"  webhooks: service {service_rate:.0f}/s ({hook['count']} deliveries, "
        f"complete={complete}), baseline {base_rate:.0f}/s, ratio {out['ratio']}",
        flush=True,
    )
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(100), indent=1))
