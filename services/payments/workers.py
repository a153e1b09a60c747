"""Background loops of the payments service, apart from the use cases they call.

- the submitter: bills to GePG as soon as they are written (the store reports them on
  the write signal, kind ``submit``) and again with backoff while GePG is away;
- the expiry loop: bills past their expiry expire, payers are reminded before it;
- GePG cancellations of cancelled bills;
- the daily reconciliation of the previous day.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.payments import handlers
from shared.logging import get_logger
from shared.waiting import sleep_or_stop, wait_any

log = get_logger("payments")


class Submitter:
    def __init__(self, ctx: handlers.Context) -> None:
        self.ctx = ctx
        self._wake = asyncio.Event()

    def hint(self, collection: str, doc_id: Any) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                found = await handlers.submit_due_bills(self.ctx)
            except Exception as exc:  # MongoDB away: the next round tries again
                log.warning("bill_submission_round_failed", error=type(exc).__name__)
                found = 0
            if found:
                continue
            await wait_any(stop, self._wake, self.ctx.settings.scan_interval_s)


async def _every(stop: asyncio.Event, interval_s: float, name: str, work: Any) -> None:
    while not stop.is_set():
        try:
            await work()
        except Exception as exc:
            log.warning(f"{name}_failed", error=type(exc).__name__)
        await sleep_or_stop(stop, interval_s)


async def run_expiry(ctx: handlers.Context, stop: asyncio.Event) -> None:
    await _every(
        stop, ctx.settings.scan_interval_s, "bill_expiry", lambda: handlers.expire_and_remind(ctx)
    )


async def run_gepg_cancellations(ctx: handlers.Context, stop: asyncio.Event) -> None:
    await _every(
        stop,
        max(5.0, ctx.settings.scan_interval_s),
        "gepg_cancel",
        lambda: handlers.cancel_at_gepg(ctx),
    )


async def run_reconciliation(ctx: handlers.Context, stop: asyncio.Event) -> None:
    await _every(
        stop,
        ctx.settings.reconcile_interval_s,
        "reconciliation",
        lambda: handlers.reconcile_if_due(ctx),
    )
