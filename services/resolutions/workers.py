"""Background loops of the resolutions service, apart from the use cases they call."""

from __future__ import annotations

import asyncio

from services.resolutions import handlers
from shared.logging import get_logger
from shared.waiting import sleep_or_stop

log = get_logger("resolutions")


async def chase_once(ctx: handlers.Context) -> tuple[int, int]:
    """One round: the reminders due to focal persons, then the coordinators' digest."""
    reminders = await handlers.send_due_reminders(ctx)
    digests = await handlers.send_digests(ctx)
    return reminders, digests


async def run_chasing(ctx: handlers.Context, stop: asyncio.Event, *, interval_s: float) -> None:
    """Chase what is late every ``interval_s`` seconds until ``stop`` is set. Each rule
    fires once (the store keeps its key), so a round repeated — or run by two instances
    at once — sends nothing twice."""
    while not stop.is_set():
        try:
            reminders, digests = await chase_once(ctx)
            if reminders or digests:
                log.info("chasing_done", reminders=reminders, digests=digests)
        except Exception as exc:  # MongoDB down: try again next round
            log.warning("chasing_failed", error=type(exc).__name__)
        await sleep_or_stop(stop, interval_s)
