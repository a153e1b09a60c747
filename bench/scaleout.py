"""Scale-out: the surge with one and with two notification instances on one machine.

The same surge as part 2 (``surge.run_one``: registration and notification on a fresh
stack on disk, wrk over 50 connections, the clock to the last confirmation email), once
with one notification instance and once with two in the same consumer group (Kafka
shares the partitions between them; both senders claim from the one delivery log).
Reported with the number of cores: on 2 cores a second instance competes with the
registration service, the servers and the first instance for the same CPU.
"""

from __future__ import annotations

import os
from typing import Any

from bench import surge


def run(n: int, timeout_s: float, one: dict[str, Any] | None = None) -> dict[str, Any]:
    """``one``: the surge phase's row of the same size from this run, if there is one."""
    rows = []
    for instances in (1, 2):
        if instances == 1 and one is not None:
            rows.append(one)
            continue
        rows.append(surge.run_one(n, timeout_s, notification_instances=instances))
    first, second = rows

    def rate(row: dict[str, Any]) -> float:  # emails/s: defined for an incomplete one too
        return row["emails"] / row["seconds_to_last_email"] if row["seconds_to_last_email"] else 0

    speedup = round(rate(second) / rate(first), 2) if rate(first) else None
    out = {"registrations": n, "cores": os.cpu_count(), "rows": rows, "speedup": speedup}
    print(
        f"  scale-out n={n} on {out['cores']} cores: two instances {speedup}× one (emails/s)",
        flush=True,
    )
    return out
