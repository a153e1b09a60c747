"""Settings shared by every service, read from the environment (pydantic-settings).

Kafka and SMTP settings are global (``KAFKA_*``, ``SMTP_*``); each service has its own
MongoDB URL, database and HTTP port under its own prefix (``REGISTRATION_MONGO_URL`` …),
because each service owns its database and nothing else reads it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "test", "production"]


class KafkaSettings(BaseSettings):
    """Broker connection and producer durability."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    # acks=all: a record is acknowledged once every in-sync replica has it.
    acks: Literal["all", "1", "0"] = "all"
    # On for Apache Kafka; the embedded tansu broker refuses idempotent producers.
    enable_idempotence: bool = True
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    create_topics: bool = False
    # Topics carry personal data: records older than this are deleted (shared/topics.py).
    topic_retention_days: float = Field(30.0, gt=0)
    # The private streams (registration.notices.v1, resolutions.notices.v1: contact
    # details, tickets): shorter.
    private_topic_retention_days: float = Field(7.0, gt=0)
    client_id_prefix: str = "mkutano"


class CoreSettings(BaseSettings):
    """What every service reads, whatever it does."""

    model_config = SettingsConfigDict(env_prefix="MKUTANO_", extra="ignore")

    env: Environment = "production"
    bootstrap_admin_key: SecretStr | None = None
    seed_demo: bool = False
    # Ticket signing secret (registration signs, registrars verify); dev/test derive one.
    ticket_secret: SecretStr | None = None


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOG_", extra="ignore")

    format: Literal["auto", "json", "console"] = "auto"
    level: str = "INFO"


class ServiceSettings(BaseSettings):
    """Base for a service's own settings; subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="ignore")

    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = "mkutano"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Bounds for at-least-once processing.
    consumer_max_attempts: int = 5
    consumer_retry_base_s: float = 0.2
    outbox_poll_interval_s: float = 0.2
    # Writes hint the relay; this scan catches what no hint named (other instances, crashes).
    outbox_scan_interval_s: float = 2.0
    outbox_lease_s: float = 30.0
    # Records taken from Kafka in batches (up to this many per poll, waiting at most this
    # long for them), deduplicated, recorded and committed once per batch
    # (``shared.consumer.BatchOptions.of``). 0: one record at a time, the default; the
    # services whose streams are busy (notification, payments, webhooks) set 200.
    consumer_batch_max_records: int = Field(0, ge=0)
    consumer_batch_timeout_ms: int = Field(50, ge=1)
    shutdown_grace_s: float = 10.0
    # Per-client limits on public endpoints (off only for load tests on a private stack).
    rate_limits: bool = True

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    core: CoreSettings = Field(default_factory=CoreSettings)
    log: LogSettings = Field(default_factory=LogSettings)
