"""Background loops of the notification service: reminders and announcements.

Each loop claims work with a lease (a worker that dies leaves it to another after the
lease) and calls the use cases in ``handlers``; the senders are in ``dispatcher``.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Any

from services.notification import handlers
from services.notification.domain import Announcement
from services.notification.ports import ANNOUNCEMENTS, FAN_OUT, REMIND, REMINDERS, Signal
from shared.logging import get_logger
from shared.waiting import ScanSchedule, sleep_or_stop, wait_any

log = get_logger("notification")


class ReminderWorker:
    """Fires due reminders, one claim at a time, until stopped.

    A claim that finds nothing reads the reminders collection (the embedded server reads
    it whole), so while nothing is due the claims back off from ``reminder_poll_s`` to
    ``reminder_max_poll_s``; a reminder this process schedules (``ports.REMIND``, with
    its due time) brings the next claim forward to the moment it is due. Reminders other
    instances schedule are found by the backed-off claims.
    """

    def __init__(self, ctx: handlers.Context, signal: Signal | None = None) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.scans = ScanSchedule(s.reminder_poll_s, s.reminder_max_poll_s)
        self._due: list[float] = []  # due times (epoch s) of reminders scheduled here
        self._wake = asyncio.Event()
        if signal is not None:
            signal.listen(self._scheduled, work=REMIND)

    def _scheduled(self, collection: str, due_at: Any) -> None:
        if collection == REMINDERS:
            heapq.heappush(self._due, float(due_at))
            self._wake.set()

    def wait_s(self, now: float) -> float:
        """How long to wait for the next claim: the backed-off interval, or less when a
        reminder scheduled here falls due sooner."""
        wait = self.scans.every_s
        if self._due:
            wait = min(wait, max(0.0, self._due[0] - now))
        return wait

    async def run(self, stop: asyncio.Event) -> None:
        ctx = self.ctx
        while not stop.is_set():
            claimed_at = ctx.clock().timestamp()
            try:
                reminder = await handlers.claim_reminder(ctx)
                if reminder is not None:
                    await handlers.fire_reminder(ctx, reminder)
                    self.scans.scanned(True)
                    continue
                self.scans.scanned(False)
            except Exception as exc:  # MongoDB down: the lease brings the reminder back
                log.warning("reminder_worker_error", error=type(exc).__name__)
                self.scans.reset()
            while self._due and self._due[0] <= claimed_at:  # due then: claimed, or gone
                heapq.heappop(self._due)
            self._wake.clear()
            await wait_any(stop, self._wake, self.wait_s(ctx.clock().timestamp()))


async def run_reminders(ctx: handlers.Context, stop: asyncio.Event) -> None:
    """Fire due reminders until stopped (``ReminderWorker`` without the signal)."""
    await ReminderWorker(ctx).run(stop)


async def fan_out(ctx: handlers.Context, announcement: Announcement, stop: asyncio.Event) -> None:
    """Turn an announcement into notifications in batches, at a bounded rate.

    Progress is saved after each batch (``handlers.fan_out_batch``), so a fan-out retaken
    after a crash goes on from there and repeats no message.
    """
    batch = max(1, ctx.settings.announcement_batch)
    pause = batch / max(ctx.settings.announcement_rate_per_s, 0.001)
    a = announcement
    while a.cursor < len(a.targets) and not stop.is_set():
        a = await handlers.fan_out_batch(ctx, a)
        if a.cursor < len(a.targets):
            await sleep_or_stop(stop, pause)


class AnnouncementWorker:
    """Fans out announcements until stopped; woken by the write signal when one is
    created (``ports.FAN_OUT``), else it looks every ``reminder_poll_s``, backing off to
    ``reminder_max_poll_s`` while it finds none (another instance's, or one left by a
    worker that died)."""

    def __init__(self, ctx: handlers.Context, signal: Signal) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.scans = ScanSchedule(s.reminder_poll_s, s.reminder_max_poll_s)
        self._wake = asyncio.Event()
        signal.listen(self._created, work=FAN_OUT)

    def _created(self, collection: str, _: Any) -> None:
        if collection == ANNOUNCEMENTS:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        ctx = self.ctx
        while not stop.is_set():
            try:
                announcement = await handlers.claim_announcement(ctx)
                if announcement is not None:
                    await fan_out(ctx, announcement, stop)
                    self.scans.scanned(True)
                    continue
                self.scans.scanned(False)
            except Exception as exc:  # MongoDB down: the lease brings the announcement back
                log.warning("announcement_worker_error", error=type(exc).__name__)
                self.scans.reset()
            self._wake.clear()
            await wait_any(stop, self._wake, self.scans.every_s)
