"""shared.tokenbucket: the senders' throttle, on a fake clock (no waiting)."""

from __future__ import annotations

import asyncio

import pytest

from shared.tokenbucket import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_a_burst_passes_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        await bucket.acquire()
    assert clock.now == 0.0  # a one-second burst passes at once
    for _ in range(10):
        await bucket.acquire()
    assert clock.now == pytest.approx(2.0)  # then 5 per second
    clock.now += 100  # idle time refills at most one second's worth
    for _ in range(5):
        await bucket.acquire()
    before = clock.now
    await bucket.acquire()
    assert clock.now == pytest.approx(before + 0.2)


async def test_waiters_are_served_in_turn_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, clock=clock, sleep=clock.sleep)
    await asyncio.gather(*(bucket.acquire() for _ in range(8)))
    assert clock.now == pytest.approx(3.0)  # 2 at once, then 6 more at 2 per second


async def test_a_rate_below_one_still_lets_one_through_and_then_waits() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.5, clock=clock, sleep=clock.sleep)
    await bucket.acquire()
    assert clock.now == 0.0
    await bucket.acquire()
    assert clock.now == pytest.approx(2.0)
