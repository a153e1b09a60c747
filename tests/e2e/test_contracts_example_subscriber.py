"""examples/subscriber.py, run as a process against the session's broker, sees a new
registration once, and skips a redelivered record with the same ce_id."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import httpx
import pytest

from shared.topics import REGISTRATION
from tests.helpers import TopicReader, create_event, participant, publish_raw, unique_id
from tests.stack import wait_until

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "subscriber.py"
REGISTERED = "tz.go.ega.registration.ParticipantRegistered.v1"


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
