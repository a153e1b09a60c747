"""What the notification use cases need from the outside: the store and the channels.

``NotificationStore`` is implemented by ``store.MongoNotificationStore`` (MongoDB, the
only module that touches it) and by ``tests/unit/fakes/notification.FakeNotificationStore``
(in memory). The channels are implemented by ``channels`` (SMTP, an HTTP SMS gateway)
and by the fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol

from services.notification.domain import (
    Announcement,
    Candidate,
    KnownEvent,
    Notification,
    Participant,
    Reminder,
)

# The collections a store reports its writes under (``WriteSignal.written``), and the
# kinds of work a write can leave besides events for the outbox relay.
NOTIFICATIONS = "notifications"
ANNOUNCEMENTS = "announcements"
# A notification queued to send now (new, or resent): the senders listen.
SEND = "send"
# An announcement to fan out: the announcement worker listens.
FAN_OUT = "fan_out"
# A reminder scheduled (reported with its due time, epoch seconds): the reminder worker
# listens.
REMINDERS = "reminders"
REMIND = "remind"


class StoreUnavailable(ConnectionError):
    """The store could not reach its database; a write may or may not have landed.

    A ``ConnectionError`` (so an ``OSError``): the Kafka consumer treats it as an
    infrastructure failure and retries the record instead of dead-lettering it.
    """


class Signal(Protocol):
    """The process's one wake signal (``shared.outbox.WriteSignal``)."""

    def listen(self, listener: Callable[[str, Any], None], *, work: str = ...) -> None: ...

    def written(self, collection: str, doc_id: Any, *, work: str = ...) -> None: ...


class NotificationStore(Protocol):
    """The delivery log, the participants' and events' projections, reminders and
    announcements. Every write that leaves work behind is reported to the signal: a
    notification's events (``NOTIFICATIONS``, for the relay), a notification to send
    now (``NOTIFICATIONS``, work ``SEND``), an announcement to fan out (``ANNOUNCEMENTS``,
    work ``FAN_OUT``). Raises ``StoreUnavailable`` when the database cannot be reached,
    and ``DomainError("concurrent_update")`` when a revision-checked save lost a race.
    """

    # -- the delivery log ---------------------------------------------------------------

    async def add(self, notifications: Sequence[Notification]) -> int:
        """Insert new notifications (with their events); those whose id exists already
        are left as they are. Returns how many were new; each is reported (``SEND``)."""
        ...

    async def get(self, notification_id: str) -> Notification | None: ...

    async def save(self, notification: Notification) -> Notification:
        """Write its state and its recorded events in one revision-checked write; a
        notification made due again (resent) is reported (``SEND``). Returns it as saved
        (new revision)."""
        ...

    async def claim(
        self, candidate: Candidate, *, lease_s: float, now: datetime
    ) -> Notification | None:
        """Take a notification for sending if it is still as ``candidate`` saw it (status
        and lease) and due; None if another sender took it, or it was sent meanwhile."""
        ...

    async def due(self, limit: int, now: datetime) -> list[Candidate]:
        """A scan: notifications to take now, most overdue first (the safety net for what
        no signal named: due retries of other processes, expired leases, leftovers)."""
        ...

    async def list_notifications(self, filters: dict[str, str], limit: int) -> list[Notification]:
        """The delivery log, newest first, filtered by equality on these fields
        (registration_id, channel, status, event_id, announcement_id, template)."""
        ...

    async def statuses_of_announcement(self, announcement_id: str) -> dict[str, int]:
        """How many of an announcement's notifications are in each status."""
        ...

    # -- the participants' projection -----------------------------------------------------

    async def upsert_participant(
        self, registration_id: str, fields: dict[str, Any], *, event_time: str | None
    ) -> bool:
        """Update (or create) a registration's projection with ``fields``; False if its
        data was erased (tombstone), or ``event_time`` (ISO) is older than the event the
        projection already reflects."""
        ...

    async def upsert_participants(
        self, updates: Sequence[tuple[str, dict[str, Any], str | None]]
    ) -> list[bool]:
        """``upsert_participant`` for several (registration id, fields, event time), in
        their order, in bulk writes; one answer each."""
        ...

    async def erase_participant(self, registration_id: str, event_id: str, now: datetime) -> None:
        """Replace the projection with a tombstone; cancel its unsent notifications and
        scrub the delivery log's copies of the recipient and the message's context."""
        ...

    async def erase_recipient(self, recipient: str, now: datetime) -> int:
        """Cancel the unsent notifications to ``recipient`` and scrub the delivery log's
        copies of it (an institution's contact person erased: issue 13 B)."""
        ...

    async def active_participants(
        self,
        event_id: str,
        *,
        cadre: str | None = None,
        ids: Sequence[str] | None = None,
        statuses: tuple[str, ...] = ("confirmed",),
        categories: Sequence[str] = (),
        institution_codes: Sequence[str] = (),
    ) -> list[Participant]:
        """Not erased participants of an event in ``statuses`` (narrowed to a cadre, to
        categories and to institutions where given), by registration id."""
        ...

    async def count_participants(
        self,
        event_id: str,
        *,
        cadre: str | None = None,
        statuses: tuple[str, ...] = ("confirmed",),
        categories: Sequence[str] = (),
        institution_codes: Sequence[str] = (),
    ) -> int:
        """How many participants ``active_participants`` would give (an audience's size)."""
        ...

    # -- events and reminders ---------------------------------------------------------------

    async def get_event(self, event_id: str) -> KnownEvent | None: ...

    async def remember_event(
        self, details: dict[str, Any], *, state: str | None, now: datetime
    ) -> None:
        """Keep an event's details and state. Without a state (heard of through a
        registration), the details only fill in an event not known yet."""
        ...

    async def set_reminder_rules(
        self, event_id: str, offsets_s: list[int] | None, now: datetime
    ) -> None: ...

    async def reminders_of(self, event_id: str) -> list[Reminder]:
        """An event's reminders, soonest first."""
        ...

    async def schedule_reminders(
        self, event_id: str, wanted: Sequence[Reminder], now: datetime
    ) -> int:
        """Cancel the event's pending reminders not in ``wanted``; create those of
        ``wanted`` missing (ids are deterministic: nothing twice). Returns how many new."""
        ...

    async def claim_reminder(self, *, lease_s: float, now: datetime) -> Reminder | None:
        """Take one due reminder (or one whose worker's lease expired)."""
        ...

    async def reminder_fired(self, reminder_id: str, notifications: int, now: datetime) -> None: ...

    # -- announcements ------------------------------------------------------------------

    async def add_announcement(self, announcement: Announcement) -> None:
        """Insert it; one still fanning out is reported (``ANNOUNCEMENTS``, ``FAN_OUT``)."""
        ...

    async def get_announcement(self, announcement_id: str) -> Announcement | None: ...

    async def claim_announcement(self, *, lease_s: float, now: datetime) -> Announcement | None:
        """Take one announcement still fanning out whose lease is free."""
        ...

    async def save_announcement_progress(self, announcement: Announcement) -> None:
        """Its cursor, lease, status and completion time."""
        ...


class EmailSender(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver one email; raises ``domain.DeliveryError`` (permanent or not)."""
        ...


class SmsSender(Protocol):
    async def send(self, to: str, text: str) -> str:
        """Deliver one SMS, returning the gateway's id; raises ``domain.DeliveryError``."""
        ...
