"""The aiokafka reconnect-log throttle (shared/broker.py): a broker outage must not flood logs."""

from __future__ import annotations

import logging

from shared.broker import RepeatedLogThrottle


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, args, None)


def test_repeated_lines_are_held_back_and_counted(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("shared.broker.time.monotonic", lambda: clock[0])
    throttle = RepeatedLogThrottle(interval_s=10.0)
    template = "Unable connect to node with id %s: %s"
    passed = [throttle.filter(_record(template, 1, "refused")) for _ in range(50)]
    assert passed == [True] + [False] * 49
    # Another template is not held back by the first one.
    assert throttle.filter(_record("Marking the coordinator dead (node %s)", 1))
    clock[0] += 10.5
    record = _record(template, 1, "refused")
    assert throttle.filter(record)
    assert (
        record.getMessage()
        == "Unable connect to node with id 1: refused [49 similar line(s) held back]"
    )
