"""shared.outbox.WriteSignal: each listener hears the kind of work it listens for."""

from __future__ import annotations

from shared.outbox import WriteSignal


def test_listeners_hear_their_kind_of_work_only() -> None:
    signal = WriteSignal()
    events: list[tuple[str, str]] = []
    sends: list[tuple[str, str]] = []
    relay = lambda c, i: events.append((c, i))  # noqa: E731
    signal.listen(relay)
    signal.listen(lambda c, i: sends.append((c, i)), work="send")
    signal.written("notifications", "a")
    signal.written("notifications", "b", work="send")
    assert events == [("notifications", "a")] and sends == [("notifications", "b")]
    signal.unlisten(relay)
    signal.written("notifications", "c")
    assert events == [("notifications", "a")]
