"""A token bucket: an in-process throttle on how fast one worker does something.

The notification senders use one per channel, so that a burst of messages does not get
the service blocked by the SMTP relay or the SMS gateway. (``shared.ratelimit`` is a
different thing: fixed-window counters in MongoDB that every instance of a service
shares, answering HTTP callers with 429.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """At most ``rate`` acquisitions per second, bursts up to one second's worth.

    ``clock`` (monotonic seconds) and ``sleep`` are injectable, so a test checks the rate
    without waiting. Waiters are served in turn (one lock), so none is starved.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.rate = max(rate, 0.001)
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self.updated = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more may go, then take its token."""
        async with self._lock:
            while True:
                now = self._clock()
                elapsed = max(0.0, now - self.updated)
                self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
                self.updated = now
                # The epsilon stops float rounding from sleeping ~1e-17 s in a loop.
                if self.tokens >= 1 - 1e-9:
                    self.tokens = max(0.0, self.tokens - 1)
                    return
                await self._sleep((1 - self.tokens) / self.rate)
