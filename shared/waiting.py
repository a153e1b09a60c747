"""Waits for background loops: they end early when the service is stopping; and the
schedule of their safety-net scans."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Wait until ``stop`` or ``wake`` is set, at most ``seconds``."""
    tasks = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


class ScanSchedule:
    """When a safety-net scan is next due: every ``base_s`` while scans find work,
    doubling up to ``max_s`` while they find none (on the embedded MongoDB server a scan
    reads the whole collection, so an idle service must not keep paying for it).

    Used by the outbox relay and by the notification senders; ``clock`` is injectable.
    """

    def __init__(
        self, base_s: float, max_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.base_s = base_s
        self.max_s = max(base_s, max_s)
        self.every_s = base_s
        self._clock = clock
        self._next = 0.0

    def due(self) -> bool:
        return self._clock() >= self._next

    def scanned(self, found: bool) -> None:
        """Record a scan's outcome and set the next one."""
        self.every_s = self.base_s if found else min(self.every_s * 2, self.max_s)
        self._next = self._clock() + self.every_s

    def reset(self) -> None:
        """Back to the base interval (after a failure: look closely again)."""
        self.every_s = self.base_s
