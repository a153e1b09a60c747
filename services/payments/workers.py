"""Background loops of the payments service, apart from the use cases they call.

- the submitter: bills to GePG as soon as they are written (the store reports them on
  the write signal, kind ``submit``) and again with backoff while GePG is away;
- the expiry loop: bills past their expiry expire, payers are reminded before it;
- GePG cancellations of cancelled bills;
- the daily reconciliation of the previous day.

Each loop's query reads the whole bills collection on the embedded MongoDB server, so a
loop that finds nothing waits longer each round (doubling, up to ``IDLE_BACKOFF`` times
its interval): an idle service stops paying for scans as its bills grow. New work still
goes at once: a bill written for submission wakes the submitter on the write signal.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.payments import handlers
from shared.logging import get_logger
from shared.waiting import sleep_or_stop, wait_any

log = get_logger("payments")
# How far an idle loop backs off, in multiples of its interval: 1 s → 8 s for the
# submitter (GePG's control numbers are awaited), 1 s → 30 s for expiry and reminders
# (bills expire in days), 5 s → 20 s for the cancellations (GePG is told within 20 s).
SUBMIT_BACKOFF = 8
IDLE_BACKOFF = 30
CANCEL_BACKOFF = 4


def backoff(wait_s: float, found: object, base_s: float, max_s: float) -> float:
    """The next wait of a loop: its interval while it finds work, doubling while not."""
    return base_s if found else min(max(base_s, wait_s * 2), max_s)


class Submitter:
    def __init__(self, ctx: handlers.Context) -> None:
        self.ctx = ctx
        self._wake = asyncio.Event()

    def hint(self, collection: str, doc_id: Any) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        base = self.ctx.settings.scan_interval_s
        wait = base
        while not stop.is_set():
            self._wake.clear()
            try:
                found = await handlers.submit_due_bills(self.ctx)
            except Exception as exc:  # MongoDB away: the next round tries again
                log.warning("bill_submission_round_failed", error=type(exc).__name__)
                found, wait = 0, 0.0  # look closely again
            if found:
                wait = base
                continue
            wait = backoff(wait, found, base, SUBMIT_BACKOFF * base)
            await wait_any(stop, self._wake, wait)
            if self._wake.is_set():
                wait = base  # a bill was written: look closely for a while


async def _every(
    stop: asyncio.Event, interval_s: float, name: str, work: Any, *, max_s: float | None = None
) -> None:
    """Run ``work`` every ``interval_s``; while it finds nothing (a falsy result), back
    off up to ``max_s``; after a failure, at ``interval_s`` again."""
    wait = interval_s
    ceiling = interval_s if max_s is None else max_s
    while not stop.is_set():
        try:
            found = await work()
        except Exception as exc:
            log.warning(f"{name}_failed", error=type(exc).__name__)
            found = True
        wait = backoff(wait, found, interval_s, ceiling)
        await sleep_or_stop(stop, wait)


async def run_expiry(ctx: handlers.Context, stop: asyncio.Event) -> None:
    base = ctx.settings.scan_interval_s
    await _every(
        stop,
        base,
        "bill_expiry",
        lambda: handlers.expire_and_remind(ctx),
        max_s=IDLE_BACKOFF * base,
    )


async def run_gepg_cancellations(ctx: handlers.Context, stop: asyncio.Event) -> None:
    base = max(5.0, ctx.settings.scan_interval_s)
    await _every(
        stop,
        base,
        "gepg_cancel",
        lambda: handlers.cancel_at_gepg(ctx),
        max_s=CANCEL_BACKOFF * base,
    )


async def run_reconciliation(ctx: handlers.Context, stop: asyncio.Event) -> None:
    # One read by _id per round (the day's reconciliation): no scan to back off from.
    await _every(
        stop,
        ctx.settings.reconcile_interval_s,
        "reconciliation",
        lambda: handlers.reconcile_if_due(ctx),
    )
