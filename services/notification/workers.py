"""Background loops of the notification service: reminders and announcements.

Each loop claims work with a lease (a worker that dies leaves it to another after the
lease) and calls the use cases in ``handlers``; the senders are in ``dispatcher``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.notification import handlers
from services.notification.domain import Announcement
from services.notification.ports import ANNOUNCEMENTS, FAN_OUT, Signal
from shared.logging import get_logger
from shared.waiting import sleep_or_stop, wait_any

log = get_logger("notification")


async def run_reminders(ctx: handlers.Context, stop: asyncio.Event) -> None:
    """Fire due reminders, one claim at a time, until stopped."""
    while not stop.is_set():
        try:
            reminder = await handlers.claim_reminder(ctx)
            if reminder is not None:
                await handlers.fire_reminder(ctx, reminder)
                continue
        except Exception as exc:  # MongoDB down: the lease brings the reminder back
            log.warning("reminder_worker_error", error=type(exc).__name__)
        await sleep_or_stop(stop, ctx.settings.reminder_poll_s)


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
    created (``ports.FAN_OUT``), else it looks every ``reminder_poll_s``."""

    def __init__(self, ctx: handlers.Context, signal: Signal) -> None:
        self.ctx = ctx
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
                    continue
            except Exception as exc:  # MongoDB down: the lease brings the announcement back
                log.warning("announcement_worker_error", error=type(exc).__name__)
            self._wake.clear()
            await wait_any(stop, self._wake, ctx.settings.reminder_poll_s)
