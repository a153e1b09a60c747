"""The senders: claim due notifications and deliver them, at each channel's rate.

New and resent notifications reach the senders through the process's write signal (the
store reports them, ``ports.SEND``): they are claimed by ``_id``, one round trip each,
without querying the whole log — which the embedded server answers by reading every
document. A notification to be retried is queued again by its sender once its backoff is
over. Now and then a scan (``ScanSchedule``: every ``scan_interval_s``, backing off to
four times that while it finds nothing) catches what no signal named: due retries of a
process that died, expired leases, other instances' leftovers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from services.notification import handlers
from services.notification.domain import Candidate, Notification
from services.notification.ports import NOTIFICATIONS, SEND, Signal
from shared.logging import get_logger
from shared.tokenbucket import TokenBucket
from shared.tracing import SpanKind, span
from shared.waiting import ScanSchedule, sleep_or_stop, wait_any

log = get_logger("notification")

# At most this many notifications are queued from one scan.
SCAN_BATCH = 500


class Dispatcher:
    """``settings.senders`` senders sharing one queue of notifications to claim."""

    def __init__(
        self,
        ctx: handlers.Context,
        signal: Signal,
        *,
        limits: dict[str, Any] | None = None,
        scans: ScanSchedule | None = None,
    ) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.limits = limits or {
            "email": TokenBucket(s.smtp.rate_per_s),
            "sms": TokenBucket(s.sms.rate_per_s),
        }
        self._scans = scans or ScanSchedule(s.scan_interval_s, 4 * s.scan_interval_s)
        # Notifications to claim, each with the status and lease it had when queued.
        self._ready: deque[Candidate] = deque()
        self._wake = asyncio.Event()
        # One sender scans at a time: the others, finding the scan due while it runs,
        # would each read the whole collection again (on the embedded server).
        self._scanning = False
        self.scans = 0
        signal.listen(self._queued, work=SEND)

    def _queued(self, collection: str, notification_id: Any) -> None:
        """The store wrote a notification that is due now (new, or resent)."""
        if collection == NOTIFICATIONS:
            self._ready.append(Candidate(notification_id, "pending", 0.0))
            self._wake.set()

    def _due_again(self, notification_id: str) -> None:
        """A retry's backoff is over."""
        self._ready.append(Candidate(notification_id, "retry", 0.0))
        self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._ready)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._sender(stop) for _ in range(self.ctx.settings.senders)))

    async def _sender(self, stop: asyncio.Event) -> None:
        poll = self.ctx.settings.dispatcher_poll_s
        while not stop.is_set():
            try:
                notification = await self.claim_next()
            except Exception as exc:  # MongoDB down: wait and retry
                log.warning("claim_failed", error=type(exc).__name__)
                await sleep_or_stop(stop, 1.0)
                continue
            if notification is None:
                self._wake.clear()
                await wait_any(stop, self._wake, poll)
                continue
            await self.deliver(notification)

    async def claim_next(self) -> Notification | None:
        """The next notification to send: a queued one by ``_id``; else, when the scan is
        due, the ones it finds are queued. Taken meanwhile (sent, or by another sender),
        a queued one is skipped."""
        for _ in range(2):
            while self._ready:
                notification = await handlers.claim(self.ctx, self._ready.popleft())
                if notification is not None:
                    return notification
            if self._scanning or not self._scans.due():
                return None
            self._scanning = True
            try:
                found = await handlers.due_notifications(self.ctx, SCAN_BATCH)
            finally:
                self._scanning = False
            self.scans += 1
            self._ready.extend(found)
            self._scans.scanned(bool(found))
            if len(found) > 1:
                self._wake.set()  # the senders waiting meanwhile take the rest
        return None

    async def deliver(self, notification: Notification) -> None:
        """Send one claimed notification, in a span that continues the trace of the event
        that caused it; queue it again when its retry is due."""
        n = notification
        with span(
            f"{n.channel} send",
            traceparent=n.traceparent,
            kind=SpanKind.CLIENT,
            attributes={
                "mkutano.notification.id": n.id,
                "mkutano.notification.template": n.template,
                "mkutano.notification.attempt": n.attempts,
            },
        ):
            await self.limits[n.channel].acquire()
            delay = await handlers.deliver(self.ctx, n)
        if delay is not None:
            asyncio.get_running_loop().call_later(delay, self._due_again, n.id)
