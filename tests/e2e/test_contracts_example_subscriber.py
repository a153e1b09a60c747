"""examples/subscriber.py, run as a process against the session's broker, sees a new
registration once, skips a redelivered record with the same ce_id, and skips and reports
a record whose value is not JSON instead of crashing."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import httpx
import pytest

from shared.topics import REGISTRATION
from tests.helpers import (
    TopicReader,
    cloudevent_headers,
    create_event,
    participant,
    publish_raw,
    unique_id,
)
from tests.stack import wait_until

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "subscriber.py"
REGISTERED = "tz.go.ega.registration.ParticipantRegistered.v2"


async def test_example_subscriber_prints_registrations_once(platform, tmp_path) -> None:
    out = tmp_path / "subscriber.out"
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            "--bootstrap",
            platform.kafka.bootstrap,
            "--group",
            unique_id("example"),
            "--session-timeout-ms",
            "2000",  # the embedded broker's group join waits half of it
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:

        def lines() -> list[dict]:
            return [json.loads(x) for x in out.read_text().splitlines() if x.startswith("{")]

        await wait_until(lambda: any("subscribed" in x for x in lines()), timeout=20)
        event = await create_event(platform.registration.url, platform.admin_headers)
        async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
            r = await client.post(f"/api/v1/events/{event['id']}/registrations", json=participant())
        assert r.status_code == 201, r.text
        created = r.json()

        def mine() -> list[dict]:
            return [x for x in lines() if x.get("key") == created["id"]]

        (line,) = await wait_until(mine, timeout=20, message=lambda: out.read_text()[-2000:])
        assert line["ce_type"] == REGISTERED
        assert line["reference"] == created["reference"]
        assert line["event_id"] == event["id"]
        assert "email" not in json.dumps(line)

        # Redeliver the same record (same ce_id): the example deduplicates it.
        async with TopicReader(platform.kafka.bootstrap, [REGISTRATION]) as reader:
            (record,) = await reader.wait_for(lambda rec: rec.ce_id == line["ce_id"])
        await publish_raw(
            platform.kafka.bootstrap,
            REGISTRATION,
            key=record.key,
            headers=record.headers,
            value=json.dumps(record.value).encode(),
        )
        await wait_until(
            lambda: any(x.get("duplicate") == line["ce_id"] for x in lines()), timeout=20
        )
        assert len(mine()) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_example_subscriber_skips_and_reports_a_record_that_is_not_json(
    platform, tmp_path
) -> None:
    out = tmp_path / "subscriber.out"
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            "--bootstrap",
            platform.kafka.bootstrap,
            "--group",
            unique_id("example"),
            "--session-timeout-ms",
            "2000",
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:

        def lines() -> list[dict]:
            return [json.loads(x) for x in out.read_text().splitlines() if x.startswith("{")]

        await wait_until(lambda: any("subscribed" in x for x in lines()), timeout=20)
        key = unique_id("poison")
        poison = {
            "not-json": b"\xff{not json",
            "not-an-object": b"[1, 2]",
        }
        ce_ids = {}
        for name, value in poison.items():
            headers = cloudevent_headers(REGISTERED)
            ce_ids[name] = headers["ce_id"]
            await publish_raw(
                platform.kafka.bootstrap, REGISTRATION, key=key, headers=headers, value=value
            )
        # Then a good record on the same key (same partition, after the poison).
        good = cloudevent_headers(REGISTERED)
        data = {"registration_id": key, "reference": "MK-POISON", "status": "confirmed"}
        await publish_raw(
            platform.kafka.bootstrap,
            REGISTRATION,
            key=key,
            headers=good,
            value=json.dumps({**data, "event": {"event_id": "e"}}).encode(),
        )

        def seen_all() -> bool:
            got = lines()
            skipped = {x.get("skipped") for x in got}
            return set(ce_ids.values()) <= skipped and any(
                x.get("ce_id") == good["ce_id"] for x in got
            )

        await wait_until(seen_all, timeout=20, message=lambda: out.read_text()[-2000:])
        reports = [x for x in lines() if x.get("skipped") in ce_ids.values()]
        assert {r["reason"] for r in reports} == {"invalid_payload"}
        assert all(r["topic"] == REGISTRATION and isinstance(r["offset"], int) for r in reports)
        assert "Traceback" not in out.read_text()
        assert proc.returncode is None  # still running
    finally:
        if proc.returncode is None:  # a crashed subscriber has no process left to signal
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
