"""Idle cost: CPU of every process, and what still reaches MongoDB, while nothing happens.

A stack on disk (nx-27017 on a data directory, as ``make run`` runs it) with every
service of the platform (registration, notification, payments with the GePG
simulator, webhooks, resolutions), their servers and a counting proxy
(``bench.wirecount``) between the services and MongoDB. At 0 registrations the stack is
new; at 10,000 and 50,000 it is the surge's stack (``surge.run_one(..., idle_s=...)``)
once its emails are all accepted: the services are restarted through the proxy, the
stack is left to settle (bounded), then a window of ``seconds`` measures each process's
share of a core (CPU seconds over wall seconds, from /proc) and the queries per
collection the server answered.
"""

from __future__ import annotations

import time
from typing import Any

from bench.stack import BenchStack, proc_stats
from bench.wirecount import top
from deploy import embedded

SERVICES = ("registration", "notification", "payments", "webhooks", "resolutions")
QUIET_PCT = 15.0  # the whole stack under this share of a core: settled


def start_services(stack: BenchStack) -> None:
    """Every service of the platform on ``stack`` (those not running already)."""
    for name in SERVICES:
        if name in stack.services:
            continue
        if name == "payments":
            port = embedded.free_port()
            stack.start_gepg(port)
            stack.servers["gepg"].wait_ready()
            stack.start_service("payments", port=port, **stack.gepg_overrides())
        else:
            stack.start_service(name)


def restart_through_proxy(stack: BenchStack) -> None:
    """Stop the services started before the proxy; start every service through it."""
    if stack.wire is None:
        from bench.wirecount import WireCounter

        stack.wire = WireCounter(stack.mongo_port).__enter__()
    for name in list(stack.services):
        stack.services.pop(name).stop(timeout=15)
    start_services(stack)


def _cpu(stack: BenchStack) -> dict[str, float]:
    every = {**stack.servers, **stack.services}
    return {name: proc_stats(p.pid).get("cpu_s", 0.0) for name, p in every.items() if p.alive}


def settle(stack: BenchStack, max_s: float, window_s: float = 3.0) -> float:
    """Wait (at most ``max_s``) until the stack uses under QUIET_PCT of a core over a
    window; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < max_s:
        before = _cpu(stack)
        time.sleep(window_s)
        after = _cpu(stack)
        used = sum(after.get(k, 0.0) - v for k, v in before.items())
        if used / window_s * 100 < QUIET_PCT:
            break
    return round(time.monotonic() - started, 1)


def measure(stack: BenchStack, seconds: float) -> dict[str, Any]:
    """Each process's share of a core (%) and MongoDB's requests over ``seconds``."""
    if stack.wire is not None:
        stack.wire.mark()
    before = _cpu(stack)
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    after = _cpu(stack)
    pct = {k: round((after.get(k, v) - v) / wall * 100, 2) for k, v in before.items()}
    out: dict[str, Any] = {
        "seconds": round(wall, 1),
        "cpu_pct": pct,
        "total_pct": round(sum(pct.values()), 2),
    }
    if stack.wire is not None:
        counts = stack.wire.counts()
        requests = sum(c["n"] for commands in counts.values() for c in commands.values())
        out["mongodb_requests_per_min"] = round(requests / wall * 60, 1)
        out["top_collections"] = top(counts)
    return out


def after_load(stack: BenchStack, seconds: float, settle_s: float) -> dict[str, Any]:
    """The idle figures of a stack that has just done its work (the surge's)."""
    restart_through_proxy(stack)
    waited = settle(stack, settle_s)
    return {"settled_after_s": waited, **measure(stack, seconds)}


def fresh(seconds: float, settle_s: float) -> dict[str, Any]:
    """The idle figures of a new stack on disk (0 registrations)."""
    with BenchStack("idle0", storage="disk", count_wire=True) as stack:
        start_services(stack)
        waited = settle(stack, settle_s)
        return {"registrations": 0, "settled_after_s": waited, **measure(stack, seconds)}


def line(row: dict[str, Any]) -> str:
    worst = max(row["cpu_pct"].items(), key=lambda kv: kv[1]) if row["cpu_pct"] else ("-", 0)
    return (
        f"  idle at {row['registrations']:,}: stack {row['total_pct']} % of a core "
        f"(most: {worst[0]} {worst[1]} %), MongoDB "
        f"{row.get('mongodb_requests_per_min')} requests/min"
    )
