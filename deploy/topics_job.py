"""One-shot job: create the platform's Kafka topics, then exit (docker-compose ``topics``).

Environment: ``KAFKA_BOOTSTRAP_SERVERS`` (required), ``KAFKA_REPLICATION_FACTOR``
(default 1), ``TOPICS_TIMEOUT_S`` (how long to wait for the brokers, default 120).
Exits 0 when every topic exists, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import os
import sys

from shared.topics import all_topics, ensure_topics


def main() -> int:
    """Create the missing topics; return the process exit code."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        print("KAFKA_BOOTSTRAP_SERVERS is not set", file=sys.stderr)
        return 1
    replication = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
    timeout_s = float(os.environ.get("TOPICS_TIMEOUT_S", "120"))
    try:
        created = asyncio.run(
            ensure_topics(bootstrap, all_topics(replication), timeout_s=timeout_s)
        )
    except Exception as exc:  # report any failure as a failed job, with the reason
        print(f"creating topics on {bootstrap} failed: {exc!r}", file=sys.stderr)
        return 1
    print(f"topics created: {', '.join(created) or '(all existed)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
