"""Kafka broker factory with explicit durability and acknowledgement defaults.

- Producer: ``acks=all``; idempotence from settings (on for Apache Kafka, off for the
  embedded broker, which refuses it). Topics are never created implicitly.
- Subscribers: ``AckPolicy.MANUAL`` — the consumer runtime (``shared.consumer``) acks
  only after an event was applied or dead-lettered, so a crash means redelivery, never
  loss. FastStream's Kafka default (``ACK_FIRST``) would be at-most-once.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from shared.settings import KafkaSettings


def make_broker(settings: KafkaSettings, *, service: str, description: str = "") -> KafkaBroker:
    """A FastStream Kafka broker configured for at-least-once delivery."""
    acks: Any = "all" if settings.acks == "all" else int(settings.acks)
    return KafkaBroker(
        settings.bootstrap_servers,
        client_id=f"{settings.client_id_prefix}-{service}",
        acks=acks,
        enable_idempotence=settings.enable_idempotence,
        allow_auto_create_topics=False,
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
        linger_ms=0,
        graceful_timeout=15.0,
        ack_policy=AckPolicy.MANUAL,
        logger=logging.getLogger(f"faststream.{service}"),
        log_level=logging.DEBUG,  # per-message "Received"/"Processed" lines: debug only
        description=description or f"Mkutano {service} service",
    )


def subscriber_options(settings: KafkaSettings, *, group_id: str) -> dict[str, Any]:
    """Options for every group subscriber: explicit acks, start from the beginning."""
    return {
        "group_id": group_id,
        "ack_policy": AckPolicy.MANUAL,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_interval_ms": 300_000,
    }
