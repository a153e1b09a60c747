"""Notification service settings (``NOTIFICATION_*``, ``SMTP_*``, ``SMS_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import ServiceSettings


class SmtpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMTP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 1025
    starttls: bool = False
    tls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field("Mkutano <no-reply@mkutano.ega.go.tz>", validation_alias="SMTP_FROM")
    timeout_s: float = 10.0
    # A relay connection is reused for the next message while idle less than this.
    connection_idle_s: float = 30.0
    # Messages per second: a burst must not get the sender blocked by the relay.
    rate_per_s: float = 200.0


class SmsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMS_", extra="ignore")

    gateway_url: str | None = None
    token: SecretStr | None = None
    sender_id: str = "eGA-MKUTANO"
    timeout_s: float = 10.0
    rate_per_s: float = 50.0


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_", extra="ignore")

    mongo_db: str = "mkutano_notification"
    http_port: int = 8002
    senders: int = 8
    # Worker processes rendering the emails off the event loop (None: the cores beyond
    # two; 0: rendered in the event loop).
    render_workers: int | None = None
    max_send_attempts: int = 8
    retry_base_s: float = 1.0
    retry_max_s: float = 300.0
    send_lease_s: float = 60.0
    dispatcher_poll_s: float = 0.2
    # New notifications are queued in-process; this scan finds due retries, expired
    # leases and other instances' leftovers.
    scan_interval_s: float = 2.0
    # Consumer group on the notices (registration.notices.v1, resolutions.notices.v1),
    # registration.v1 and resolutions.v1;
    # every instance shares it. The Kafka ACLs let only this group read the notices.
    consumer_group: str = "notification"
    # The consumer in batches (shared.settings.ServiceSettings): the notices deduplicated,
    # projected and logged in bulk writes. 0: one by one.
    consumer_batch_max_records: int = Field(200, ge=0)
    # Default reminder rules: seconds before an event's start (7 days and 1 day).
    reminder_offsets_s: list[int] = Field(default_factory=lambda: [7 * 86400, 86400])
    reminder_poll_s: float = 1.0
    # Idle, the reminder and announcement claims back off to this (each reads its whole
    # collection on the embedded server); reminders scheduled here fire on time anyway.
    reminder_max_poll_s: float = 16.0
    reminder_lease_s: float = 60.0
    # Announcements are fanned out into notifications at most this fast.
    announcement_rate_per_s: float = 20.0
    announcement_batch: int = 20
    announcement_lease_s: float = 60.0
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    sms: SmsSettings = Field(default_factory=SmsSettings)
