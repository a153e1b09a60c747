"""The safety-net scan schedule shared by the outbox relay and the notification senders."""

from __future__ import annotations

from shared.waiting import ScanSchedule


def test_idle_scans_back_off_to_the_cap_and_work_or_failure_brings_them_back() -> None:
    now = [100.0]
    scans = ScanSchedule(2.0, 8.0, clock=lambda: now[0])
    assert scans.due()  # the first scan runs at once
    gaps = []
    for _ in range(5):
        scans.scanned(found=False)
        gaps.append(scans.every_s)
        now[0] += scans.every_s - 0.01
        assert not scans.due()
        now[0] += 0.01
        assert scans.due()
    assert gaps == [4.0, 8.0, 8.0, 8.0, 8.0]

    scans.scanned(found=True)  # a leftover found: look again soon
    assert scans.every_s == 2.0
    scans.scanned(found=False)
    scans.reset()  # a failure: back to the base interval for the next one
    scans.scanned(found=False)
    assert scans.every_s == 4.0
