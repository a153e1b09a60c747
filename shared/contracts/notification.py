"""Events on ``notification.v1``: the delivery log, for other systems and for audit."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from shared.contracts.base import IntegrationEvent, register
from shared.topics import NOTIFICATION

Channel = Literal["email", "sms"]


class _NotificationEvent(IntegrationEvent):
    domain = "notification"
    topic = NOTIFICATION
    aggregate_field = "notification_id"

    notification_id: str
    channel: Channel
    template: str
    cause_event_id: str
    cause_event_type: str
    registration_id: str | None = None
    resolution_id: str | None = None
    attempts: int


@register
class NotificationSent(_NotificationEvent):
    """The message was accepted by the SMTP server or the SMS gateway."""

    sent_at: datetime
    segments: int | None = None


@register
class NotificationFailed(_NotificationEvent):
    """The message could not be delivered: a permanent failure, or retries exhausted."""

    failed_at: datetime
    error: str
    permanent: bool
