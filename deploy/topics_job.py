"""One-shot job: create the platform's Kafka topics, then exit (docker-compose ``topics``).

Environment: ``KAFKA_BOOTSTRAP_SERVERS`` (required), ``KAFKA_REPLICATION_FACTOR``
(default 1), ``KAFKA_TOPIC_RETENTION_DAYS`` (default 30: the topics carry personal
data), ``KAFKA_PRIVATE_TOPIC_RETENTION_DAYS`` (default 7: the private streams
``registration.notices.v1`` and ``resolutions.notices.v1`` carry contact details and
tickets), ``TOPICS_TIMEOUT_S`` (how long to wait for the brokers, default 120). Topics that
exist get the retention too. Exits 0 when every topic exists with it, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import os
import sys

from shared.topics import (
    DEFAULT_PRIVATE_RETENTION_DAYS,
    DEFAULT_RETENTION_DAYS,
    align_topic_configs,
    all_topics,
    ensure_topics,
)


def main() -> int:
    """Create the missing topics; return the process exit code."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        print("KAFKA_BOOTSTRAP_SERVERS is not set", file=sys.stderr)
        return 1
    replication = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
    retention_days = float(os.environ.get("KAFKA_TOPIC_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))
    private_days = float(
        os.environ.get("KAFKA_PRIVATE_TOPIC_RETENTION_DAYS", DEFAULT_PRIVATE_RETENTION_DAYS)
    )
    timeout_s = float(os.environ.get("TOPICS_TIMEOUT_S", "120"))
    topics = all_topics(replication, retention_days, private_days)

    async def run() -> tuple[list[str], dict[str, str]]:
        created = await ensure_topics(bootstrap, topics, timeout_s=timeout_s)
        return created, await align_topic_configs(bootstrap, topics)

    try:
        created, configs = asyncio.run(run())
    except Exception as exc:  # report any failure as a failed job, with the reason
        print(f"creating topics on {bootstrap} failed: {exc!r}", file=sys.stderr)
        return 1
    print(f"topics created: {', '.join(created) or '(all existed)'}")
    print(
        f"retention {retention_days:g} days: " + ", ".join(f"{k} {v}" for k, v in configs.items())
    )
    failed = [k for k, v in configs.items() if v.startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
