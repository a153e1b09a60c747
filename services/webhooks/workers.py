"""Background loops of the webhooks service: the senders and the owners' notices.

The senders take deliveries from an in-process queue: the store reports each delivery
that is due now (new, replayed, released) on the write signal, and each attempt that
will be due again later comes back through a timer heap. A scan of the log (on a
``ScanSchedule``) is the safety net: another instance's work, expired leases, a restart.

One subscription has at most ``per_subscription_in_flight`` attempts running: a slow or
dead receiver holds that many senders and connections, never all of them, and the other
subscriptions' deliveries go on meanwhile.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from typing import Any

from services.webhooks import handlers
from services.webhooks.ports import DELIVERIES
from shared.logging import get_logger
from shared.waiting import ScanSchedule, sleep_or_stop, wait_any

log = get_logger("webhooks")
SCAN_BATCH = 500
# The safety-net scan reads the whole delivery log on the embedded MongoDB server: while
# it finds nothing it backs off from ``scan_interval_s`` up to this many times it (1 s →
# 30 s). Due work does not wait for it: new, replayed and released deliveries come on
# the write signal, an attempt's retry from the timer heap.
SCAN_BACKOFF = 30
# The owners' notices: every 5 s while some are pending, backing off to 60 s while none.
NOTICE_BACKOFF = 12


def subscription_of(delivery_id: str) -> str:
    """Delivery ids are ``<subscription id>:<ce_id>``."""
    return delivery_id.partition(":")[0]


class Dispatcher:
    """The senders: ``settings.senders`` tasks sharing one queue."""

    def __init__(self, ctx: handlers.Context) -> None:
        self.ctx = ctx
        s = ctx.settings
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._later: list[tuple[float, str]] = []  # (due epoch, delivery id)
        self._in_flight: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._scans = ScanSchedule(s.scan_interval_s, SCAN_BACKOFF * s.scan_interval_s)
        self._scanning = False

    def hint(self, collection: str, doc_id: Any) -> None:
        """A delivery is due now (the store reported it on the write signal, which the
        app wires here: ``runtime.signal.listen(dispatcher.hint)``)."""
        if collection != DELIVERIES:
            return
        self._enqueue(str(doc_id))

    def _enqueue(self, delivery_id: str) -> None:
        if delivery_id not in self._queued:
            self._queued.add(delivery_id)
            self._ready.append(delivery_id)
        self._wake.set()

    def _next(self) -> str | None:
        """The next queued delivery whose subscription is under its in-flight bound."""
        now = self.ctx.clock().timestamp()
        while self._later and self._later[0][0] <= now:
            _, delivery_id = heapq.heappop(self._later)
            self._enqueue(delivery_id)
        bound = self.ctx.settings.per_subscription_in_flight
        for _ in range(len(self._ready)):
            delivery_id = self._ready.popleft()
            if self._in_flight.get(subscription_of(delivery_id), 0) < bound:
                self._queued.discard(delivery_id)
                return delivery_id
            self._ready.append(delivery_id)  # its subscription is busy: others first
        return None

    async def _scan(self) -> None:
        if self._scanning or not self._scans.due():
            return  # one sender scans; the others take what it queues
        self._scanning = True
        try:
            await self._scan_once()
        finally:
            self._scanning = False

    async def _scan_once(self) -> None:
        try:
            found = await self.ctx.store.due_deliveries(
                now=self.ctx.clock().timestamp(), limit=SCAN_BATCH
            )
        except Exception as exc:  # MongoDB away: try again at the next scan
            log.warning("delivery_scan_failed", error=type(exc).__name__)
            self._scans.reset()
            return
        for delivery_id in found:
            self._enqueue(delivery_id)
        self._scans.scanned(bool(found))

    def _wait_s(self) -> float:
        """How long an idle sender may sleep: until the next timer or scan."""
        wait = self.ctx.settings.scan_interval_s
        if self._later:
            wait = min(wait, max(0.0, self._later[0][0] - self.ctx.clock().timestamp()))
        return max(0.01, wait)

    async def _send(self, delivery_id: str) -> None:
        subscription_id = subscription_of(delivery_id)
        self._in_flight[subscription_id] = self._in_flight.get(subscription_id, 0) + 1
        try:
            attempted = await handlers.deliver(self.ctx, delivery_id)
        except Exception as exc:  # MongoDB away and the like: the scan brings it back
            log.warning("delivery_failed_to_run", error=type(exc).__name__)
            attempted = None
        finally:
            self._in_flight[subscription_id] -= 1
            if not self._in_flight[subscription_id]:
                del self._in_flight[subscription_id]
            self._wake.set()  # a slot of this subscription is free again
        if attempted is not None and attempted.due_at is not None:
            heapq.heappush(self._later, (attempted.due_at, delivery_id))

    async def _sender(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            delivery_id = self._next()
            if delivery_id is None:
                await self._scan()
                delivery_id = self._next()
            if delivery_id is None:
                self._wake.clear()
                await wait_any(stop, self._wake, self._wait_s())
                continue
            await self._send(delivery_id)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._sender(stop) for _ in range(self.ctx.settings.senders)))


async def run_owner_notices(ctx: handlers.Context, stop: asyncio.Event) -> None:
    """Retry the owners' notices that could not go when their subscription was paused."""
    interval = max(ctx.settings.scan_interval_s, 5.0)
    wait = interval
    while not stop.is_set():
        try:
            found = await handlers.notify_owners(ctx)
        except Exception as exc:
            log.warning("owner_notices_failed", error=type(exc).__name__)
            found = 1
        wait = interval if found else min(wait * 2, NOTICE_BACKOFF * interval)
        await sleep_or_stop(stop, wait)
