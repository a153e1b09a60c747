"""Part 1: the registration API against a one-insert baseline, at several concurrencies.

Only the registration service runs (with its outbox relay publishing to Kafka, which is
part of a registration's cost); notification is not started, so its work does not
compete for the two cores. Each concurrency level gets a fresh event with room for
every registration (all are confirmed: the full path with a seat and a ticket).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from pymongo import AsyncMongoClient

from bench.common import create_event
from bench.loadgen import post_registrations
from bench.stack import BenchStack


async def mongo_alone(url: str, n: int) -> dict[str, float]:
    """The MongoDB server's own insert rate (same server), sequential and 50 concurrent."""
    client: AsyncMongoClient = AsyncMongoClient(url)
    col = client["bench_alone"]["docs"]
    body = {"full_name": "Asha Juma", "email": "x@bench.go.tz", "phone": "+255712000000"}
    try:
        start = time.perf_counter()
        for i in range(n):
            await col.insert_one({"_id": f"s{i}", **body})
        sequential = n / (time.perf_counter() - start)
        sem = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            async with sem:
                await col.insert_one({"_id": f"c{i}", **body})

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        concurrent = n / (time.perf_counter() - start)
    finally:
        await client.close()
    return {
        "insert_one_sequential_per_s": round(sequential),
        "insert_one_c50_per_s": round(concurrent),
    }


def run(levels: list[int], total: int) -> dict[str, Any]:
    """Measure both endpoints at each concurrency level; returns the results section."""
    with BenchStack("api", sms=False) as stack:
        stack.start_service("registration")
        stack.start_baseline()
        reg_url, base_url = stack.url("registration"), stack.url("baseline")
        # Warm both (imports, connection pools, JIT-free but cache-warm paths).
        warm = create_event(reg_url, stack.admin_headers, capacity=1000)
        post_registrations(reg_url, f"/api/v1/events/{warm}/registrations", total=200,
                           connections=10, prefix="warm")  # fmt: skip
        post_registrations(base_url, "/api/v1/events/warm/registrations", total=200,
                           connections=10, prefix="warm")  # fmt: skip
        rows = []
        for c in levels:
            run_id = secrets.token_hex(3)
            baseline = post_registrations(
                base_url, "/api/v1/events/base/registrations", total=total, connections=c,
                prefix=f"b{run_id}",
            )  # fmt: skip
            event_id = create_event(reg_url, stack.admin_headers, capacity=total + 500)
            service = post_registrations(
                reg_url, f"/api/v1/events/{event_id}/registrations", total=total, connections=c,
                prefix=f"r{run_id}",
            )  # fmt: skip
            rows.append(
                {
                    "concurrency": c,
                    "service": service.as_dict(),
                    "baseline": baseline.as_dict(),
                    "throughput_ratio": round(service.throughput / baseline.throughput, 3),
                }
            )
            print(
                f"  api c={c}: service {service.throughput:.0f}/s p99 {service.lat_ms['p99']} ms"
                f" (non-201 {service.non_201}); baseline {baseline.throughput:.0f}/s"
                f" p99 {baseline.lat_ms['p99']} ms; ratio {rows[-1]['throughput_ratio']}",
                flush=True,
            )
        alone = asyncio.run(mongo_alone(stack.mongo_url, 2000))
        print(f"  mongodb alone: {alone}", flush=True)
        return {
            "requests_per_level": total,
            "rows": rows,
            "mongodb_alone": alone,
            "processes": stack.stats(),
        }


if __name__ == "__main__":
    import json
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    print(json.dumps(run([1, 10], n), indent=1))
