"""Topic names and their layout: the single place that says which topics exist.

One topic per stream; the record key is the aggregate id so that the events of one
aggregate stay in order. Dead-letter topics are one per consuming service.

Public and private streams. ``registration.v1``, ``resolutions.v1`` and ``notification.v1``
are public: any e-GA system may be granted read access (docs/integrating.md).
``registration.notices.v1`` is private: it carries what only the notification service
needs to reach a participant (contact details, language, the check-in ticket, the
self-service link), and only the registration service may write it and only the
notification service's consumer group may read it (Kafka ACLs, deploy/kafka-acls.sh).
``resolutions.notices.v1`` is private likewise: the focal persons' names, emails and
phones, written by the resolutions service only and read by notification's group only.

Every topic has a time-based retention (``retention.ms``, ``cleanup.policy=delete``):
events may carry personal data, and the Personal Data Protection Act wants it kept no
longer than its purpose needs. The services' databases are the record (erasure and
retention act there); a topic is a transport, kept long enough to replay a consumer after
an outage or a dead-letter fix (``KAFKA_TOPIC_RETENTION_DAYS``, 30 by default). The private
streams hold contact details and secrets, so they are kept shorter
(``KAFKA_PRIVATE_TOPIC_RETENTION_DAYS``, 7 by default, never longer than the public one).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import IncompatibleBrokerVersion, KafkaError, TopicAlreadyExistsError

REGISTRATION = "registration.v1"
NOTIFICATION = "notification.v1"
RESOLUTIONS = "resolutions.v1"
# Private: registration -> notification only (contact details, tickets, self-service links).
REGISTRATION_NOTICES = "registration.notices.v1"
# Private: resolutions -> notification only (the focal persons' names, emails, phones).
RESOLUTIONS_NOTICES = "resolutions.notices.v1"
# Payments (issue 14): bills, control numbers, payments, reconciliation (key = bill id).
PAYMENTS = "payments.v1"
# Private: payments -> notification only (the payer's contact: control numbers, receipts).
PAYMENTS_NOTICES = "payments.notices.v1"

PUBLIC_STREAMS = (REGISTRATION, RESOLUTIONS, NOTIFICATION, PAYMENTS)
PRIVATE_STREAMS = (REGISTRATION_NOTICES, RESOLUTIONS_NOTICES, PAYMENTS_NOTICES)


def dead_letter_topic(service: str) -> str:
    """The dead-letter topic of one consuming service, e.g. ``notification.dlq``."""
    return f"{service}.dlq"


DEFAULT_RETENTION_DAYS = 30
DEFAULT_PRIVATE_RETENTION_DAYS = 7
DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    retention_ms: int = DEFAULT_RETENTION_DAYS * DAY_MS

    @property
    def configs(self) -> dict[str, str]:
        """The topic-level settings the platform owns."""
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}


def all_topics(
    replication_factor: int = 1,
    retention_days: float = DEFAULT_RETENTION_DAYS,
    private_retention_days: float = DEFAULT_PRIVATE_RETENTION_DAYS,
) -> list[TopicSpec]:
    """Every topic the platform uses, with its partition count and retention (a private
    stream's is ``private_retention_days``, capped at ``retention_days``)."""
    names = [
        (REGISTRATION, 6),
        (REGISTRATION_NOTICES, 6),
        (NOTIFICATION, 3),
        (RESOLUTIONS, 3),
        (RESOLUTIONS_NOTICES, 3),
        (dead_letter_topic("registration"), 1),
        (dead_letter_topic("notification"), 1),
        (dead_letter_topic("resolutions"), 1),
        (dead_letter_topic("webhooks"), 1),
        (PAYMENTS, 3),
        (PAYMENTS_NOTICES, 3),
        (dead_letter_topic("payments"), 1),
    ]
    retention_ms = int(retention_days * DAY_MS)
    private_ms = min(retention_ms, int(private_retention_days * DAY_MS))
    return [
        TopicSpec(n, p, replication_factor, private_ms if n in PRIVATE_STREAMS else retention_ms)
        for n, p in names
    ]


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
                        [
                            NewTopic(
                                spec.name,
                                spec.partitions,
                                spec.replication_factor,
                                topic_configs=spec.configs,
                            )
                        ]
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


# DescribeConfigs' config_source for a setting made on the topic itself (Kafka >= 1.1).
TOPIC_OVERRIDE = 1


async def _describe(bootstrap_servers: str, names: list[str]) -> dict[str, list[tuple]]:
    """DescribeConfigs of some topics: by name, (key, value, source) of each setting."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        )
    finally:
        await admin.close()
    out: dict[str, list[tuple]] = {}
    for response in responses:
        for resource in response.resources:
            _error, _msg, _type, name, entries = resource[:5]
            out[name] = [(e[0], e[1], e[3]) for e in entries]
    return out


async def topic_configs(bootstrap_servers: str, names: list[str]) -> dict[str, dict[str, str]]:
    """The current settings of some topics, by name."""
    described = await _describe(bootstrap_servers, names)
    return {name: {k: v for k, v, _ in entries} for name, entries in described.items()}


async def align_topic_configs(
    bootstrap_servers: str, topics: list[TopicSpec] | None = None
) -> dict[str, str]:
    """Bring existing topics' retention to the spec (a changed
    ``KAFKA_TOPIC_RETENTION_DAYS`` applies to topics created before it).

    Returns, by topic: ``unchanged``, ``updated``, ``failed: …``, or ``unsupported``
    when the broker does not implement AlterConfigs (the embedded tansu broker).
    """
    topics = topics if topics is not None else all_topics()
    described = await _describe(bootstrap_servers, [t.name for t in topics])
    current = {name: {k: v for k, v, _ in entries} for name, entries in described.items()}
    stale = [
        t for t in topics if any(current.get(t.name, {}).get(k) != v for k, v in t.configs.items())
    ]
    result = {t.name: "unchanged" for t in topics}
    if not stale:
        return result
    # AlterConfigs (aiokafka has no incremental form) replaces all of a topic's own
    # settings: send the ones ops set on it too, with ours over them.
    resources = []
    for t in stale:
        own = {
            k: v
            for k, v, source in described.get(t.name, [])
            if source == TOPIC_OVERRIDE and v is not None
        }
        resources.append(
            ConfigResource(ConfigResourceType.TOPIC, t.name, configs={**own, **t.configs})
        )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    await admin.start()
    try:
        responses = await admin.alter_configs(resources)
        for response in responses:
            for error_code, message, _type, name in (r[:4] for r in response.resources):
                result[name] = "updated" if error_code == 0 else f"failed: {message}"
    except IncompatibleBrokerVersion:
        result.update({t.name: "unsupported" for t in stale})
    finally:
        await admin.close()
    return result
