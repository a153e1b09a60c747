"""In-memory fakes of the notification service's ports: the store and the channels.

``FakeNotificationStore`` implements ``services.notification.ports.NotificationStore``
with dicts and keeps what the use cases rely on: unique ids (an insert of an existing
notification is refused), revision-checked saves (``DomainError("concurrent_update")``),
claims conditioned on status and lease, the projection's tombstones and event-time
order, and the signal reports of the real store. Saved events are appended to
``outbox`` as the messages the relay would publish.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from services.notification.domain import (
    Announcement,
    Audience,
    Candidate,
    KnownEvent,
    Notification,
    Participant,
    Reminder,
)
from services.notification.ports import (
    ANNOUNCEMENTS,
    FAN_OUT,
    NOTIFICATIONS,
    SEND,
    StoreUnavailable,
)
from shared.envelope import OutboxMessage, wrap
from shared.errors import DomainError
from shared.outbox import WriteSignal
from shared.timeutil import iso


class FakeNotificationStore:
    """``NotificationStore`` in memory."""

    def __init__(self, signal: WriteSignal | None = None) -> None:
        self.signal = signal or WriteSignal()
        self.notifications: dict[str, Notification] = {}
        self.participants: dict[str, dict[str, Any]] = {}
        self.events: dict[str, KnownEvent] = {}
        self.reminders: dict[str, Reminder] = {}
        self.announcements: dict[str, Announcement] = {}
        self.outbox: list[OutboxMessage] = []
        # Calls that raise StoreUnavailable before doing anything (a MongoDB outage).
        self.unavailable_for = 0
        # The next ``save`` raises StoreUnavailable *after* writing (the answer was lost).
        self.lose_next_answer = False
        self.scans = 0

    def _reachable(self) -> None:
        if self.unavailable_for > 0:
            self.unavailable_for -= 1
            raise StoreUnavailable("MongoDB down (fake)")

    # -- the delivery log ---------------------------------------------------------------

    async def add(self, notifications: Sequence[Notification]) -> int:
        self._reachable()
        added = 0
        for n in notifications:
            if n.id in self.notifications:
                continue
            stored = copy.deepcopy(n)
            stored.rev = 1
            events = stored.take_events()
            self.outbox.extend(wrap(e, "notification") for e in events)
            self.notifications[n.id] = stored
            added += 1
            if events:
                self.signal.written(NOTIFICATIONS, n.id)
            self.signal.written(NOTIFICATIONS, n.id, work=SEND)
        return added

    async def get(self, notification_id: str) -> Notification | None:
        self._reachable()
        n = self.notifications.get(notification_id)
        return copy.deepcopy(n) if n is not None else None

    async def save(self, notification: Notification) -> Notification:
        self._reachable()
        current = self.notifications.get(notification.id)
        if current is None or current.rev != notification.rev:
            raise DomainError("concurrent_update", "The notification changed meanwhile.")
        events = notification.take_events()
        notification.rev += 1
        stored = copy.deepcopy(notification)
        # What a save writes: the state an outcome or a resend sets, not the recipient.
        stored.recipient, stored.context, stored.erased = (
            current.recipient,
            current.context,
            current.erased,
        )
        self.notifications[notification.id] = stored
        self.outbox.extend(wrap(e, "notification") for e in events)
        if events:
            self.signal.written(NOTIFICATIONS, notification.id)
        if notification.status == "pending":
            self.signal.written(NOTIFICATIONS, notification.id, work=SEND)
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise StoreUnavailable("the write landed, its answer was lost (fake)")
        return notification

    async def claim(
        self, candidate: Candidate, *, lease_s: float, now: datetime
    ) -> Notification | None:
        self._reachable()
        n = self.notifications.get(candidate.id)
        if n is None or (n.status, n.lease_until) != (candidate.status, candidate.lease_until):
            return None
        claimed = copy.deepcopy(n)
        claimed.claim(now, lease_s)
        claimed.rev += 1
        self.notifications[n.id] = copy.deepcopy(claimed)
        return claimed

    async def due(self, limit: int, now: datetime) -> list[Candidate]:
        self._reachable()
        self.scans += 1
        ready = sorted(
            (n for n in self.notifications.values() if n.due(now)),
            key=lambda n: n.next_attempt_at,
        )
        return [Candidate(n.id, n.status, n.lease_until) for n in ready[:limit]]

    async def list_notifications(self, filters: dict[str, str], limit: int) -> list[Notification]:
        self._reachable()
        found = [
            copy.deepcopy(n)
            for n in self.notifications.values()
            if all(getattr(n, k) == v for k, v in filters.items())
        ]
        found.sort(key=lambda n: n.created_at, reverse=True)
        return found[:limit]

    async def statuses_of_announcement(self, announcement_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.notifications.values():
            if n.announcement_id == announcement_id:
                counts[n.status] = counts.get(n.status, 0) + 1
        return counts

    # -- the participants' projection -----------------------------------------------------

    async def upsert_participant(
        self, registration_id: str, fields: dict[str, Any], *, event_time: str | None
    ) -> bool:
        self._reachable()
        doc = self.participants.get(registration_id)
        stamped = {**fields, **({"last_event_time": event_time} if event_time else {})}
        if doc is None:
            self.participants[registration_id] = copy.deepcopy(stamped)
            return True
        if doc.get("erased"):
            return False
        last = doc.get("last_event_time")
        if event_time is not None and last is not None and last > event_time:
            return False
        doc.update(copy.deepcopy(stamped))
        return True

    async def upsert_participants(
        self, updates: Sequence[tuple[str, dict[str, Any], str | None]]
    ) -> list[bool]:
        return [
            await self.upsert_participant(rid, fields, event_time=event_time)
            for rid, fields, event_time in updates
        ]

    async def erase_recipient(self, recipient: str, now: datetime) -> int:
        self._reachable()
        found = 0
        for n in self.notifications.values():
            if n.recipient != recipient:
                continue
            found += 1
            if n.status in ("pending", "retry"):
                n.status, n.last_error = "cancelled", "personal data erased"
            n.recipient, n.context, n.erased = "[erased]", {}, True
        return found

    async def erase_participant(self, registration_id: str, event_id: str, now: datetime) -> None:
        self._reachable()
        self.participants[registration_id] = {
            "event_id": event_id,
            "erased": True,
            "erased_at": iso(now),
        }
        for n in self.notifications.values():
            if n.registration_id != registration_id:
                continue
            if n.status in ("pending", "retry"):
                n.status, n.last_error = "cancelled", "personal data erased"
            n.recipient, n.context, n.erased = "[erased]", {}, True
            n.rev += 1

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
        self._reachable()
        audience = Audience(
            statuses=tuple(statuses),
            cadre=cadre,
            categories=tuple(categories),
            institution_codes=tuple(institution_codes),
        )
        out = []
        for registration_id in sorted(self.participants):
            doc = self.participants[registration_id]
            if doc.get("erased") or doc.get("event_id") != event_id:
                continue
            if not audience.admits(doc):
                continue
            if ids is not None and registration_id not in ids:
                continue
            out.append(
                Participant(
                    registration_id=registration_id,
                    event_id=event_id,
                    status=doc.get("status"),
                    contact=copy.deepcopy(doc.get("contact") or {}),
                    event=copy.deepcopy(doc.get("event") or {}),
                    reference=doc.get("reference"),
                    ticket=doc.get("ticket"),
                    self_service_url=doc.get("self_service_url"),
                    cadre=doc.get("cadre"),
                    category=doc.get("category"),
                    institution_code=doc.get("institution_code"),
                )
            )
        return out

    async def count_participants(
        self,
        event_id: str,
        *,
        cadre: str | None = None,
        statuses: tuple[str, ...] = ("confirmed",),
        categories: Sequence[str] = (),
        institution_codes: Sequence[str] = (),
    ) -> int:
        return len(
            await self.active_participants(
                event_id,
                cadre=cadre,
                statuses=statuses,
                categories=categories,
                institution_codes=institution_codes,
            )
        )

    # -- events and reminders ---------------------------------------------------------------

    async def get_event(self, event_id: str) -> KnownEvent | None:
        self._reachable()
        return self.events.get(event_id)

    async def remember_event(
        self, details: dict[str, Any], *, state: str | None, now: datetime
    ) -> None:
        self._reachable()
        event_id = details["event_id"]
        known = self.events.get(event_id)
        if state is not None:
            rules = known.rules if known else None
            self.events[event_id] = KnownEvent(event_id, copy.deepcopy(details), state, rules)
        elif known is None:
            self.events[event_id] = KnownEvent(event_id, copy.deepcopy(details), "published")
        elif known.details is None:
            self.events[event_id] = replace(known, details=copy.deepcopy(details))

    async def set_reminder_rules(
        self, event_id: str, offsets_s: list[int] | None, now: datetime
    ) -> None:
        self._reachable()
        known = self.events.get(event_id) or KnownEvent(event_id)
        self.events[event_id] = replace(known, rules=offsets_s)

    async def reminders_of(self, event_id: str) -> list[Reminder]:
        self._reachable()
        found = [r for r in self.reminders.values() if r.event_id == event_id]
        return sorted(found, key=lambda r: r.due_at)

    async def schedule_reminders(
        self, event_id: str, wanted: Sequence[Reminder], now: datetime
    ) -> int:
        self._reachable()
        wanted_ids = {r.id for r in wanted}
        for r in list(self.reminders.values()):
            if r.event_id == event_id and r.status == "pending" and r.id not in wanted_ids:
                self.reminders[r.id] = replace(r, status="cancelled")
        created = 0
        for r in wanted:
            if r.id not in self.reminders:
                self.reminders[r.id] = replace(r, status="pending", notifications=0)
                created += 1
                self.signal.written("reminders", r.due_at, work="remind")
        return created

    async def claim_reminder(self, *, lease_s: float, now: datetime) -> Reminder | None:
        self._reachable()
        at = now.timestamp()
        due = sorted(
            (r for r in self.reminders.values() if r.status == "pending" and r.due_at <= at),
            key=lambda r: r.due_at,
        )
        if not due:
            return None
        claimed = replace(due[0], status="firing")
        self.reminders[claimed.id] = claimed
        return claimed

    async def reminder_fired(self, reminder_id: str, notifications: int, now: datetime) -> None:
        self._reachable()
        r = self.reminders[reminder_id]
        self.reminders[reminder_id] = replace(r, status="done", notifications=notifications)

    # -- announcements ------------------------------------------------------------------

    async def add_announcement(self, announcement: Announcement) -> None:
        self._reachable()
        if announcement.id in self.announcements:
            raise DomainError("announcement_exists", "Duplicate announcement id.")
        self.announcements[announcement.id] = copy.deepcopy(announcement)
        if announcement.status == "fanning_out":
            self.signal.written(ANNOUNCEMENTS, announcement.id, work=FAN_OUT)

    async def get_announcement(self, announcement_id: str) -> Announcement | None:
        self._reachable()
        a = self.announcements.get(announcement_id)
        return copy.deepcopy(a) if a is not None else None

    async def claim_announcement(self, *, lease_s: float, now: datetime) -> Announcement | None:
        self._reachable()
        at = now.timestamp()
        for a in self.announcements.values():
            if a.status == "fanning_out" and a.lease_until < at:
                a.lease_until = at + lease_s
                return copy.deepcopy(a)
        return None

    async def save_announcement_progress(self, announcement: Announcement) -> None:
        self._reachable()
        self.announcements[announcement.id] = copy.deepcopy(announcement)


class FakeEmail:
    """Records the emails it was given; ``fail_with`` makes the next sends fail."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.fail_with: list[Exception] = []

    async def send(self, message: EmailMessage) -> None:
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.sent.append(message)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.sent if m["To"] == address]


class FakeSms:
    """Records the SMS it was given (recipient, text)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail_with: list[Exception] = []

    async def send(self, to: str, text: str) -> str:
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.sent.append((to, text))
        return f"sms-{len(self.sent)}"
