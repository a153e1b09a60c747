"""Kafka broker factory with explicit durability and acknowledgement defaults.

- Producer: ``acks=all``; idempotence from settings (on for Apache Kafka, off for the
  embedded broker, which refuses it). Topics are never created implicitly.
- Subscribers: ``AckPolicy.MANUAL`` — the consumer runtime (``shared.consumer``) acks
  only after an event was applied or dead-lettered, so a crash means redelivery, never
  loss. FastStream's Kafka default (``ACK_FIRST``) would be at-most-once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from shared.settings import KafkaSettings

# aiokafka's modules that log on every reconnect attempt while a broker is away.
AIOKAFKA_LOGGERS = (
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.producer.sender",
    "aiokafka.producer.producer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.consumer.consumer",
)


class RepeatedLogThrottle(logging.Filter):
    """Let each message template of a logger through at most once per ``interval_s``.

    While the broker is down aiokafka logs the same "Unable connect to node" lines
    several times a second per client (a ~5 s outage measured ~200 lines per service in
    tests/faults); at that rate a longer outage would drown every other log line. The
    line after a quiet interval says how many copies were held back.
    """

    def __init__(self, interval_s: float = 10.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[str, str], float] = {}
        self._held: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] += 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} [{held} similar line(s) held back]"
        return True


_THROTTLE = RepeatedLogThrottle()


def throttle_client_logs() -> None:
    """Install the throttle on aiokafka's loggers (idempotent)."""
    for name in AIOKAFKA_LOGGERS:
        logger = logging.getLogger(name)
        if _THROTTLE not in logger.filters:
            logger.addFilter(_THROTTLE)


def make_broker(settings: KafkaSettings, *, service: str, description: str = "") -> KafkaBroker:
    """A FastStream Kafka broker configured for at-least-once delivery."""
    throttle_client_logs()
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
