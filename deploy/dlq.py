"""Replay a service's dead-letter topic after a fix.

    python -m deploy.dlq replay --group notification [--since OFFSET] [--dry-run]

A consumer dead-letters a record to ``<service>.dlq`` with ``dlq_*`` headers (reason,
error, attempts, group, original topic/partition/offset). ``replay`` republishes each
dead-lettered record, from ``--since`` (default: where the last replay stopped) to the
end of the topic as it is when the command starts, to its ``dlq_original_topic`` with
the original key, value and headers (minus ``dlq_*``). The CloudEvent keeps its
``ce_id``, so consumers that already applied it skip it; the group that failed applies
it now (or dead-letters it again if it still fails).

Progress is committed in the consumer group ``mkutano-dlq-replay.<service>``, so
running ``replay`` twice does not replay a record twice; ``--since`` overrides it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from shared.topics import dead_letter_topic

DLQ_PREFIX = "dlq_"


@dataclass
class ReplayResult:
    """What a replay did: records seen, republished, skipped, and where it stopped."""

    seen: int = 0
    replayed: int = 0
    skipped: int = 0
    next_offset: int = 0


def replay_group(service: str) -> str:
    """The consumer group that remembers how far a service's DLQ was replayed."""
    return f"mkutano-dlq-replay.{service}"


def original_headers(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The record's own headers: everything but the ``dlq_*`` ones the consumer added."""
    return [(k, v) for k, v in headers if not k.startswith(DLQ_PREFIX)]


async def replay(
    bootstrap: str,
    service: str,
    *,
    since: int | None = None,
    dry_run: bool = False,
    out=sys.stdout,  # noqa: ANN001 (a text stream)
    acks: str | int = "all",
    enable_idempotence: bool = False,
) -> ReplayResult:
    """Republish ``<service>.dlq`` records to their original topics; see the module doc."""
    topic = dead_letter_topic(service)
    group = replay_group(service)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=acks, enable_idempotence=enable_idempotence
    )
    result = ReplayResult()
    await consumer.start()
    try:
        await consumer.topics()  # loads the cluster metadata
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            raise SystemExit(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            if since is not None:
                consumer.seek(tp, since)
            else:
                committed = await consumer.committed(tp)
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
        if not dry_run:
            await producer.start()
        total = 0
        for tp in tps:
            total += max(0, ends[tp] - await consumer.position(tp))
        print(f"{topic}: {total} record(s) to replay{' (dry run)' if dry_run else ''}", file=out)
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
                for record in batch.get(tp, []):
                    if record.offset >= ends[tp]:
                        break
                    result.seen += 1
                    headers = dict((k, v.decode(errors="replace")) for k, v in record.headers)
                    target = headers.get("dlq_original_topic")
                    label = (
                        f"[{result.seen}/{total}] offset {record.offset} "
                        f"{headers.get('ce_type', '?')} {headers.get('ce_id', '?')} "
                        f"({headers.get('dlq_reason', '?')}) -> {target}"
                    )
                    if not target:
                        result.skipped += 1
                        print(f"{label}: skipped, no dlq_original_topic", file=out)
                        continue
                    if not dry_run:
                        await producer.send_and_wait(
                            target,
                            value=record.value,
                            key=record.key,
                            headers=original_headers(list(record.headers)),
                        )
                    result.replayed += 1
                    print(label, file=out)
                    result.next_offset = record.offset + 1
            if not dry_run:
                position = await consumer.position(tp)
                await consumer.commit({tp: OffsetAndMetadata(position, "")})
                result.next_offset = position
        verb = "would replay" if dry_run else "replayed"
        print(
            f"{verb} {result.replayed}, skipped {result.skipped}; next offset {result.next_offset}",
            file=out,
        )
        return result
    finally:
        await consumer.stop()
        if not dry_run:
            await producer.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m deploy.dlq replay --group <service> [--since N] [--dry-run]``."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.dlq", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("replay", help="republish dead-lettered records to their topics")
    cmd.add_argument(
        "--group",
        required=True,
        help="the consuming service whose DLQ to replay, e.g. notification",
    )
    cmd.add_argument("--since", type=int, default=None, help="start at this DLQ offset")
    cmd.add_argument("--dry-run", action="store_true", help="list what would be replayed")
    cmd.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS)",
    )
    args = parser.parse_args(argv)
    idempotent = os.environ.get("KAFKA_ENABLE_IDEMPOTENCE", "true").lower() in ("1", "true")
    asyncio.run(
        replay(
            args.bootstrap,
            args.group,
            since=args.since,
            dry_run=args.dry_run,
            enable_idempotence=idempotent,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
