"""An e-GA system subscribing to Mkutano's events with plain aiokafka.

    python examples/subscriber.py --bootstrap kafka:9092 --group my-system

Reads registration.v1 and resolutions.v1 in a consumer group of its own, prints one JSON
line per ParticipantRegistered / ResolutionUpdated, and shows the rules every subscriber
follows (docs/integrating.md):

- the CloudEvents attributes are in the record headers (binary mode); the value is JSON;
- delivery is at-least-once: deduplicate on ``ce_id`` (here in memory; a real system keeps
  the ids it applied in its own database, in the same write as the effect);
- ``ce_type`` ends with the version: act on the versions you know, skip the others;
- a record whose value is not a JSON object (a poison record) must not stop the
  subscriber: skip it, report it (here one ``{"skipped": …}`` line naming the topic,
  partition, offset and reason, as the services dead-letter theirs), and go on;
- commit offsets only after the records were handled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from aiokafka import AIOKafkaConsumer

WANTED = {
    # Version 2: no ticket, no contact details (version 1 is retired; docs/integrating.md).
    "tz.go.ega.registration.ParticipantRegistered.v2",
    "tz.go.ega.resolutions.ResolutionUpdated.v2",
}


class PoisonRecord(ValueError):
    """A record this subscriber cannot read: skipped and reported, never retried."""


def payload(value: bytes | None) -> dict:
    """The record's JSON object, or PoisonRecord (not UTF-8, not JSON, not an object)."""
    if value is None:
        raise PoisonRecord("no value")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PoisonRecord(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise PoisonRecord(f"not a JSON object: {type(data).__name__}")
    return data


def summary(ce_type: str, data: dict) -> dict:
    """The few fields this example shows (no personal data on a console)."""
    if ce_type.endswith("ParticipantRegistered.v2"):
        return {
            "registration_id": data.get("registration_id"),
            "reference": data.get("reference"),
            "event_id": (data.get("event") or {}).get("event_id"),
            "status": data.get("status"),
            "cadre": (data.get("participant") or {}).get("cadre"),
        }
    return {
        "resolution_id": data.get("resolution_id"),
        "status": data.get("status"),
        "progress": data.get("progress"),
    }


async def run(
    bootstrap: str, group: str, topics: list[str], stop: asyncio.Event, session_ms: int = 10_000
) -> None:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(100, session_ms // 4),
    )
    seen: set[str] = set()
    await consumer.start()
    print(json.dumps({"subscribed": topics, "group": group}), flush=True)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    headers = {
                        k: (v or b"").decode(errors="replace") for k, v in record.headers or ()
                    }
                    ce_id, ce_type = headers.get("ce_id"), headers.get("ce_type", "")
                    if ce_type not in WANTED or not ce_id:
                        continue
                    if ce_id in seen:
                        print(json.dumps({"duplicate": ce_id}), flush=True)
                        continue
                    try:
                        data = payload(record.value)
                    except PoisonRecord as exc:
                        report = {
                            "skipped": ce_id,
                            "ce_type": ce_type,
                            "reason": "invalid_payload",
                            "error": str(exc),
                            "topic": record.topic,
                            "partition": record.partition,
                            "offset": record.offset,
                        }
                        print(json.dumps(report), file=sys.stdout, flush=True)
                        seen.add(ce_id)  # a redelivery is the same poison: skip it quietly
                        continue
                    line = {
                        "ce_type": ce_type,
                        "ce_id": ce_id,
                        "key": record.key.decode() if record.key else None,
                        "partition": record.partition,
                        **summary(ce_type, data),
                    }
                    print(json.dumps(line), flush=True)
                    seen.add(ce_id)
            if batch:
                await consumer.commit()  # after handling: a crash re-delivers, never loses
    finally:
        await consumer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--group", default="example-subscriber")
    parser.add_argument("--topics", default="registration.v1,resolutions.v1")
    parser.add_argument("--session-timeout-ms", type=int, default=10_000)
    args = parser.parse_args()

    async def start() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        topics = args.topics.split(",")
        await run(args.bootstrap, args.group, topics, stop, args.session_timeout_ms)

    asyncio.run(start())
    return 0


if __name__ == "__main__":
    sys.exit(main())
