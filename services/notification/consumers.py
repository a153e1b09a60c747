"""Kafka subscribers of the notification service: events → use cases (idempotent)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.notification import handlers
from shared.contracts.registration import (
    ConfirmationResendRequested,
    ParticipantRegistered,
    ParticipantWaitlisted,
)
from shared.envelope import ReceivedEvent
from shared.runtime import ServiceRuntime
from shared.topics import REGISTRATION

GROUP_ID = "notification"


def register_consumers(runtime: ServiceRuntime, ctx: handlers.Context) -> None:
    """Consumer group ``notification`` on ``registration.v1``."""

    def bind(fn: Callable[[handlers.Context, ReceivedEvent], Awaitable[None]]):
        async def handler(received: ReceivedEvent) -> None:
            await fn(ctx, received)

        return handler

    runtime.add_consumer(
        group_id=GROUP_ID,
        topics=[REGISTRATION],
        handlers={
            ParticipantRegistered: bind(handlers.record_registration_event),
            ParticipantWaitlisted: bind(handlers.record_registration_event),
            ConfirmationResendRequested: bind(handlers.record_registration_event),
        },
        description="Records the emails and SMS each registration event calls for.",
    )
