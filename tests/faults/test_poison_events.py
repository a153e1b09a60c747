"""Fault 4: poison events end in the dead-letter topic, the stream flows on, replay fixes."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest
from pymongo import AsyncMongoClient

from deploy import embedded
from deploy.embedded import LOCALHOST, REPO_ROOT
from shared.topics import REGISTRATION, dead_letter_topic
from tests.faults.support import references_of, register_many, wait_all_delivered
from tests.helpers import TopicReader, cloudevent_headers, create_event, participant, publish_raw
from tests.stack import wait_until

pytestmark = pytest.mark.e2e

REFUSED = "Taasisi ya Majaribio (refused)"
REGISTERED = "tz.go.ega.registration.ParticipantRegistered.v2"


def probe_process(stack, port: int, env: dict[str, str], **extra: str) -> embedded.Process:
    """The test-only consumer (tests/faults/probe_service.py) as a process of its own."""
    child = embedded.child_environ(
        {
            **env,
            "PROBE_HTTP_PORT": str(port),
            "PROBE_MONGO_URL": stack.mongo.url,
            "PROBE_MONGO_DB": "mkutano_probe",
            "PROBE_CONSUMER_MAX_ATTEMPTS": "3",
            "PROBE_CONSUMER_RETRY_BASE_S": "0.05",
            **extra,
        }
    )
    return embedded.Process(
        "probe",
        [sys.executable, "-m", "tests.faults.probe_service"],
        log_path=stack.workdir / "probe.log",
        env=child,
        ready=lambda: embedded.http_ok(f"http://{LOCALHOST}:{port}/health/ready"),
        ready_timeout=60,
    )


async def test_poison_events_are_dead_lettered_and_replayed_after_a_fix(
    fault_stack, reliability
) -> None:
    """Poison events: invalid payload, unknown type, a handler that always fails"""
    stack = fault_stack
    registration = await stack.start("registration")
    notification = await stack.start("notification")
    port = embedded.free_port()
    probe = probe_process(stack, port, notification.env, PROBE_REFUSE_INSTITUTION=REFUSED)
    await asyncio.to_thread(probe.start)
    mongo = AsyncMongoClient(stack.mongo.url)
    applied = mongo["mkutano_probe"]["applied"]
    try:
        event = await create_event(registration.url, stack.admin_headers, capacity=50)
        poison_ids = ["poison-invalid", "poison-unknown"]
        await publish_raw(
            stack.kafka.bootstrap,
            REGISTRATION,
            key="r-invalid",
            headers=cloudevent_headers(REGISTERED, ce_id=poison_ids[0]),
            value=b'{"registration_id": 42}',
        )
        await publish_raw(
            stack.kafka.bootstrap,
            REGISTRATION,
            key="r-unknown",
            headers=cloudevent_headers("tz.go.ega.registration.Unheard.v9", ce_id=poison_ids[1]),
            value=b"{}",
        )
        async with httpx.AsyncClient(base_url=registration.url, timeout=10) as client:
            r = await client.post(
                f"/api/v1/events/{event['id']}/registrations",
                json=participant(language="en", institution=REFUSED),
            )
        assert r.status_code == 201, r.text
        refused = r.json()
        # The stream behind the poison keeps flowing, for both consumer groups.
        answers = await register_many(registration.url, event["id"], 10)
        behind = references_of(answers)
        delivery = await wait_all_delivered(stack.smtp, behind | {refused["reference"]}, timeout=30)
        assert delivery.lost == 0
        await wait_until(
            lambda: _count(applied, {"reference": {"$in": list(behind)}}, 10),
            timeout=30,
            message="the probe did not apply the events behind the poison",
        )

        async with TopicReader(
            stack.kafka.bootstrap, [dead_letter_topic("notification"), dead_letter_topic("probe")]
        ) as reader:
            dead = await reader.wait_for(lambda r: True, count=5, timeout=30)
        by_group = {(r.headers["dlq_group"], r.headers.get("ce_id")): r.headers for r in dead}
        for group in ("notification", "probe"):
            assert by_group[(group, poison_ids[0])]["dlq_reason"] == "invalid_payload"
            assert by_group[(group, poison_ids[1])]["dlq_reason"] == "unknown_type"
        failed = [
            h
            for (g, _), h in by_group.items()
            if g == "probe" and h["dlq_reason"] == "handler_failed"
        ]
        assert len(failed) == 1, by_group.keys()
        assert failed[0]["dlq_attempts"] == "3"
        assert "refused by rule" in failed[0]["dlq_error"]
        assert failed[0]["dlq_original_topic"] == REGISTRATION
        assert await applied.count_documents({"registration_id": refused["id"]}) == 0

        # The fix: the probe restarts without the rule; then the DLQ is replayed.
        await asyncio.to_thread(probe.stop)
        probe = probe_process(stack, port, notification.env)
        await asyncio.to_thread(probe.start)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "deploy.dlq", "replay", "--group", "probe",
            cwd=REPO_ROOT,
            env=embedded.child_environ(
                {"KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap, "KAFKA_ENABLE_IDEMPOTENCE": "false"}
            ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        text = out.decode()
        assert proc.returncode == 0, text
        assert "replayed 3, skipped 0" in text, text
        await wait_until(
            lambda: _count(applied, {"registration_id": refused["id"]}, 1),
            timeout=30,
            message="the replayed event was not applied",
        )
        await asyncio.sleep(1.0)  # watching for a second application or a second email
        assert await applied.count_documents({"registration_id": refused["id"]}) == 1
        emails = await wait_all_delivered(stack.smtp, {refused["reference"]}, timeout=5)
        assert emails.duplicated == 0  # notification had applied it: the replay is deduplicated
    finally:
        await asyncio.to_thread(probe.stop)
        await mongo.close()
    reliability.record(
        issue=4,
        fault="invalid payload, unknown type, a handler failing on every attempt",
        messages=13,  # 11 registrations, 2 raw poison records
        accepted=11,
        delivered=delivery.delivered,
        lost=delivery.lost,
        duplicated=emails.duplicated,
        note="each poison record reached `<service>.dlq` with dlq_reason/dlq_error/"
        "dlq_attempts headers (3 attempts for the failing handler); the 10 events behind "
        "them were applied by both groups",
        recovery_s=None,
    )
    reliability.record(
        note="`python -m deploy.dlq replay --group probe` after the fix: "
        + text.strip().splitlines()[-1]
        + "; the fixed event applied once, the other group deduplicated it (one email)"
    )


async def _count(collection, query: dict, expected: int) -> bool:
    return await collection.count_documents(query) == expected
