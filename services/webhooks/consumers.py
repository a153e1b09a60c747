"""Kafka subscribers of the webhooks service: each record → ``handlers.record_event``.

One consumer group (``webhooks`` by default) on the streams of ``settings.topics``;
every event type of those streams is handled, so a subscription may ask for any of
them. Every instance joins the group, so they share the partitions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.webhooks import handlers
from shared.contracts import stream_events
from shared.contracts.registration import PersonalDataErased
from shared.envelope import ReceivedEvent
from shared.runtime import ServiceRuntime


def register_consumers(runtime: ServiceRuntime, ctx: handlers.Context) -> None:
    """The webhooks consumer group on the configured streams."""

    async def record(received: ReceivedEvent) -> None:
        await handlers.record_event(ctx, received)

    async def record_and_erase(received: ReceivedEvent) -> None:
        await handlers.record_event(ctx, received)
        await handlers.erase_personal_data(ctx, received)

    table: dict[type, Callable[[ReceivedEvent], Awaitable[None]]] = {
        cls: record for topic in ctx.settings.topics for cls in stream_events(topic)
    }
    if PersonalDataErased in table:
        table[PersonalDataErased] = record_and_erase

    # Batch mode (WEBHOOKS_CONSUMER_BATCH_MAX_RECORDS > 0, the default): a batch's runs of
    # records (all but the erasures) recorded in one write.
    async def record_all(events: list[ReceivedEvent]) -> None:
        await handlers.record_events(ctx, events)

    bulk: dict[type, Callable[[list[ReceivedEvent]], Awaitable[None]]] = {
        cls: record_all for cls, h in table.items() if h is record
    }
    runtime.add_consumer(
        group_id=ctx.settings.consumer_group,
        topics=list(ctx.settings.topics),
        handlers=table,
        bulk_handlers=bulk,
        description="Records one delivery per matching webhook subscription of every event "
        "of the public streams; the senders POST them (signed, retried, in order per key).",
    )
