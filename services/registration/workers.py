"""Background loops of the registration service, apart from the use cases they call."""

from __future__ import annotations

import asyncio

from services.registration import handlers
from shared.logging import get_logger
from shared.waiting import sleep_or_stop

log = get_logger("privacy")


async def run_retention(
    ctx: handlers.Context, stop: asyncio.Event, *, retention_days: int, interval_s: float
) -> None:
    """Apply the retention rule (``handlers.apply_retention``) every ``interval_s`` seconds
    until ``stop`` is set."""
    while not stop.is_set():
        try:
            count = await handlers.apply_retention(ctx, retention_days)
            if count:
                log.info("retention_applied", registrations=count)
        except Exception as exc:  # MongoDB down: try again next round
            log.warning("retention_failed", error=type(exc).__name__)
        await sleep_or_stop(stop, interval_s)


async def run_after_events(
    ctx: handlers.Context, stop: asyncio.Event, *, window_days: int, interval_s: float
) -> None:
    """Evaluation invitations and certificates of the events that ended
    (``handlers.after_events``), every ``interval_s`` seconds until ``stop`` is set."""
    after = get_logger("certificates")
    while not stop.is_set():
        try:
            done = await handlers.after_events(ctx, window_days=window_days)
            if any(done.values()):
                after.info("after_events", **done)
        except Exception as exc:  # MongoDB down: try again next round
            after.warning("after_events_failed", error=type(exc).__name__)
        await sleep_or_stop(stop, interval_s)
