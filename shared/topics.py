"""Topic names and their layout: the single place that says which topics exist.

One topic per stream; the record key is the aggregate id so that the events of one
aggregate stay in order. Dead-letter topics are one per consuming service.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

REGISTRATION = "registration.v1"
NOTIFICATION = "notification.v1"
RESOLUTIONS = "resolutions.v1"


def dead_letter_topic(service: str) -> str:
    """The dead-letter topic of one consuming service, e.g. ``notification.dlq``."""
    return f"{service}.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1


def all_topics(replication_factor: int = 1) -> list[TopicSpec]:
    """Every topic the platform uses, with its partition count."""
    names = [
        (REGISTRATION, 6),
        (NOTIFICATION, 3),
        (RESOLUTIONS, 3),
        (dead_letter_topic("registration"), 1),
        (dead_letter_topic("notification"), 1),
        (dead_letter_topic("resolutions"), 1),
    ]
    return [TopicSpec(n, p, replication_factor) for n, p in names]


async def ensure_topics(
    bootstrap_servers: str,
    topics: list[TopicSpec] | None = None,
    *,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    Retries while the broker is not reachable, up to ``timeout_s``.
    """
    topics = topics if topics is not None else all_topics()
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t.name not in existing]
            created: list[str] = []
            for spec in missing:
                try:
                    await admin.create_topics(
                        [NewTopic(spec.name, spec.partitions, spec.replication_factor)]
                    )
                    created.append(spec.name)
                except TopicAlreadyExistsError:
                    pass
            return created
        except (KafkaError, OSError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
