"""Kafka topics carry personal data, so each is created with a time-based retention, and
the topics job brings existing topics to a changed retention (real Kafka) or says it
could not (a broker without AlterConfigs, such as the embedded one)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.topics import (
    DAY_MS,
    DEFAULT_RETENTION_DAYS,
    PRIVATE_STREAMS,
    REGISTRATION,
    TopicSpec,
    align_topic_configs,
    all_topics,
    ensure_topics,
    topic_configs,
)


def fresh(retention_days: float) -> TopicSpec:
    return TopicSpec(f"test-{uuid.uuid4().hex[:10]}.v1", 1, 1, int(retention_days * DAY_MS))


async def test_topics_are_created_with_their_retention(kafka) -> None:
    # The session's topics were created by the same code with the default.
    registration = (await topic_configs(kafka.bootstrap, [REGISTRATION]))[REGISTRATION]
    assert registration["retention.ms"] == str(DEFAULT_RETENTION_DAYS * DAY_MS)
    assert registration["cleanup.policy"] == "delete"

    spec = fresh(7)
    assert await ensure_topics(kafka.bootstrap, [spec]) == [spec.name]
    configs = (await topic_configs(kafka.bootstrap, [spec.name]))[spec.name]
    assert configs["retention.ms"] == str(7 * DAY_MS)
    assert await align_topic_configs(kafka.bootstrap, [spec]) == {spec.name: "unchanged"}


def test_every_topic_has_the_configured_retention() -> None:
    topics = all_topics(3, retention_days=14)
    assert {t.name for t in topics} >= {"registration.v1", "notification.dlq"}
    private = set(PRIVATE_STREAMS)
    public = [t for t in topics if t.name not in private]
    assert all(t.configs["retention.ms"] == str(14 * DAY_MS) for t in public)
    # The private notices (contact details, tickets) are kept shorter, never longer.
    notices = {t.name: t for t in topics if t.name in private}
    assert set(notices) == private
    assert all(t.configs["retention.ms"] == str(7 * DAY_MS) for t in notices.values())
    assert notices["registration.notices.v1"].partitions == 6
    assert notices["resolutions.notices.v1"].partitions == 3
    shorter = {t.name: t.retention_ms for t in all_topics(retention_days=3)}
    assert shorter["registration.notices.v1"] == shorter["registration.v1"] == 3 * DAY_MS
    assert shorter["resolutions.notices.v1"] == 3 * DAY_MS
    two = {t.name: t.retention_ms for t in all_topics(private_retention_days=2)}
    assert two["registration.notices.v1"] == two["resolutions.notices.v1"] == 2 * DAY_MS


@pytest.mark.real_kafka
async def test_a_changed_retention_is_applied_to_existing_topics(kafka) -> None:
    spec = fresh(30)
    await ensure_topics(kafka.bootstrap, [spec])
    # A setting ops made on the topic themselves survives the change.
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        own = {**spec.configs, "max.message.bytes": "2000000"}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, own)])
    finally:
        await admin.close()
    shorter = TopicSpec(spec.name, 1, 1, 2 * DAY_MS)
    assert await align_topic_configs(kafka.bootstrap, [shorter]) == {spec.name: "updated"}
    configs = (await topic_configs(kafka.bootstrap, [spec.name]))[spec.name]
    assert configs["retention.ms"] == str(2 * DAY_MS)
    assert configs["max.message.bytes"] == "2000000"


async def topics_job(bootstrap: str, retention_days: float) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_RETENTION_DAYS": str(retention_days),
        "TOPICS_TIMEOUT_S": "10",
    }
    command = [sys.executable, "-m", "deploy.topics_job"]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=60
    )


async def test_the_topics_job_reports_the_retention_of_each_topic(kafka) -> None:
    done = await topics_job(kafka.bootstrap, DEFAULT_RETENTION_DAYS)
    assert done.returncode == 0, done.stderr
    assert "topics created: (all existed)" in done.stdout
    assert "registration.v1 unchanged" in done.stdout

    if kafka.kind != "embedded":
        return  # on Apache Kafka the change is applied: the test above
    # The embedded broker has no AlterConfigs: the job says so, and does not fail for it.
    done = await topics_job(kafka.bootstrap, 7)
    assert done.returncode == 0, done.stderr
    assert "retention 7 days: registration.v1 unsupported" in done.stdout
