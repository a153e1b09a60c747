"""In-memory fakes of the platform's own shared stores, for unit tests."""

from __future__ import annotations

from shared.envelope import ReceivedEvent


class InMemoryProcessedEvents:
    """The consumers' idempotency record (``shared.consumer.ProcessedEvents``) in a set."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def seen(self, event_id: str) -> bool:
        return event_id in self.ids

    async def record(self, received: ReceivedEvent) -> bool:
        if received.id in self.ids:
            return False
        self.ids.add(received.id)
        return True

    async def seen_many(self, event_ids: list[str]) -> set[str]:
        return {i for i in event_ids if i in self.ids}

    async def record_many(self, events: list[ReceivedEvent]) -> None:
        self.ids.update(r.id for r in events)
