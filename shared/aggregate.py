"""The base of every service's aggregates: they decide, and record what happened.

An aggregate is a plain object built from its stored document (the store does that);
its methods enforce the domain's rules, take the time as a parameter (no clock of its
own, so a test chooses the moment) and append the integration events the change causes
to ``events``. The store writes the change and those events in one atomic write (the
outbox lives in the aggregate's own document). No I/O here, no pymongo, no FastAPI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.contracts import IntegrationEvent


@dataclass(kw_only=True)
class Aggregate:
    """State read at revision ``rev`` (0 for a new one) plus the events not yet saved."""

    rev: int = 0
    events: list[IntegrationEvent] = field(default_factory=list, compare=False, repr=False)

    def record(self, event: IntegrationEvent) -> None:
        """Remember an event the change caused; the store saves it with the change."""
        self.events.append(event)

    def take_events(self) -> list[IntegrationEvent]:
        """The recorded events, once: the store takes them as it saves."""
        taken, self.events = self.events, []
        return taken
