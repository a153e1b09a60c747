"""Webhooks service settings (``WEBHOOKS_*``, and ``SMTP_*`` for the owners' emails)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import ServiceSettings
from shared.topics import NOTIFICATION, PAYMENTS, REGISTRATION, RESOLUTIONS

# Svix's schedule: the waits after the first attempt fails (5 s, 5 min, 30 min, 2 h,
# 5 h, 10 h, 10 h): an endpoint down for a day still gets the event.
SVIX_SCHEDULE_S = [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]


class SmtpSettings(BaseSettings):
    """The SMTP relay the owners' notices go through (the same ``SMTP_*`` as notification)."""

    model_config = SettingsConfigDict(env_prefix="SMTP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 1025
    starttls: bool = False
    tls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field("Mkutano <no-reply@mkutano.ega.go.tz>", validation_alias="SMTP_FROM")
    timeout_s: float = 10.0


class WebhooksSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WEBHOOKS_", extra="ignore")

    mongo_db: str = "mkutano_webhooks"
    http_port: int = 8006
    # The consumer group and the public streams it reads.
    consumer_group: str = "webhooks"
    topics: list[str] = Field(
        default_factory=lambda: [REGISTRATION, RESOLUTIONS, NOTIFICATION, PAYMENTS]
    )
    # The consumer in batches (shared.settings.ServiceSettings): deduplicated, recorded and
    # committed once per batch. 0: one by one.
    consumer_batch_max_records: int = Field(200, ge=0)
    # Waits between attempts (each with +-20 % jitter); after the last, the delivery failed.
    retry_schedule_s: list[float] = Field(default_factory=lambda: list(SVIX_SCHEDULE_S))
    retry_jitter: float = Field(0.2, ge=0, lt=1)
    # This many failed attempts in a row (no success between) pause the subscription...
    pause_after_failures: int = Field(20, ge=1)
    # ... and only once the failures have gone on this long (Svix: days; here one day).
    pause_after_failing_s: float = Field(24 * 3600.0, ge=0)
    # An old secret stays valid this long after a rotation (both signatures are sent).
    secret_overlap_s: float = Field(24 * 3600.0, ge=0)
    # Delivery over HTTP: one request's time limit, how much of the answer is read, how
    # many connections in all and how many requests one subscription may have in flight
    # (a slow receiver holds at most that many of the senders and connections).
    request_timeout_s: float = Field(10.0, gt=0)
    max_response_bytes: int = Field(64 * 1024, ge=0)
    max_connections: int = Field(32, ge=1)
    senders: int = Field(8, ge=1)
    per_subscription_in_flight: int = Field(2, ge=1)
    # Targets on loopback, link-local or private addresses are refused unless they fall
    # in one of these networks or name one of these hosts (the dev stack: 127.0.0.1).
    allowed_targets: list[str] = Field(default_factory=list)
    # Only the allow-list, public addresses refused too, and no name looked up unless
    # listed: the dev stack and the tests, whose traffic must stay on this machine.
    allowed_targets_only: bool = False
    # Delivering: lease on a claimed delivery; scan for due retries and leftovers.
    send_lease_s: float = 60.0
    scan_interval_s: float = 1.0
    # A delivery of a paused subscription (or behind an older one of its key) is looked
    # at again after this long at most; resuming wakes them at once.
    hold_s: float = 30.0
    paused_hold_s: float = 3600.0
    # Attempts kept in a delivery's log (the count is kept in full).
    attempts_kept: int = 20
    # Encrypts the signing secrets at rest (a Fernet key: 32 url-safe base64 bytes).
    # Production must set it; dev and test derive one from the bootstrap admin key.
    secrets_key: SecretStr | None = None
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
