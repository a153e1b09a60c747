"""Part 5: time to render the implementation report.

A conference with ``k`` resolutions and ``u`` progress updates in all (the timeline),
created through the resolutions API as coordinators would. Then the report
(``GET /api/v1/conferences/{id}/report``, HTML, both languages; also JSON) is fetched
``repeat`` times; if the endpoint does not exist in this build, the resolutions list
(``GET /api/v1/conferences/{id}/resolutions``) is measured instead and marked so.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx

from bench.common import percentiles
from bench.stack import BenchStack

STATUSES = ["in_progress", "in_progress", "in_progress", "completed"]


async def seed(client: httpx.AsyncClient, headers: dict[str, str], k: int, updates: int) -> str:
    """A conference with ``k`` resolutions and ``updates`` updates spread over them."""
    conference_id = f"bench-{secrets.token_hex(4)}"
    r = await client.post(
        "/api/v1/conferences",
        headers=headers,
        json={
            "id": conference_id,
            "name_sw": "Mkutano wa kipimo",
            "name_en": "Benchmark conference",
            "starts_on": "2025-02-11",
            "ends_on": "2025-02-13",
            "venue": "AICC, Arusha",
        },
    )
    r.raise_for_status()
    sem = asyncio.Semaphore(10)

    async def one(number: int, n_updates: int) -> None:
        async with sem:
            r = await client.post(
                f"/api/v1/conferences/{conference_id}/resolutions",
                headers=headers,
                json={
                    "number": number,
                    "title_sw": f"Azimio la kipimo namba {number}",
                    "title_en": f"Benchmark resolution number {number}",
                    "lead_institution": "e-GA",
                    "target_date": "2025-12-31",
                },
            )
            r.raise_for_status()
            rid, etag = r.json()["id"], r.headers["ETag"]
            for i in range(n_updates):
                progress = min(100, (i + 1) * 100 // max(1, n_updates))
                status = "completed" if progress == 100 else STATUSES[i % 3]
                r = await client.post(
                    f"/api/v1/resolutions/{rid}/updates",
                    headers={**headers, "If-Match": etag},
                    json={"status": status, "progress": progress, "note": f"Hatua {i + 1}"},
                )
                r.raise_for_status()
                etag = r.headers["ETag"]

    per, extra = divmod(updates, k)
    await asyncio.gather(*(one(i + 1, per + (1 if i < extra else 0)) for i in range(k)))
    return conference_id


async def measure(base_url: str, headers: dict[str, str], k: int, updates: int, repeat: int):
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        t = time.perf_counter()
        conference_id = await seed(client, headers, k, updates)
        seed_s = time.perf_counter() - t
        paths = await client.get("/openapi.json")
        has_report = "/api/v1/conferences/{conference_id}/report" in paths.json()["paths"]
        targets = (
            {
                "report_html": f"/api/v1/conferences/{conference_id}/report?lang=both",
                "report_json": f"/api/v1/conferences/{conference_id}/report?format=json",
            }
            if has_report
            else {"resolutions_list": f"/api/v1/conferences/{conference_id}/resolutions"}
        )
        out: dict[str, Any] = {
            "resolutions": k,
            "timeline_entries": updates,
            "seed_seconds": round(seed_s, 1),
            "report_endpoint": has_report,
        }
        for name, path in targets.items():
            times, size = [], 0
            for _ in range(repeat):
                t = time.perf_counter()
                r = await client.get(path, headers=headers)
                times.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
                size = len(r.content)
            out[name] = {"ms": percentiles(times, (50, 95)), "bytes": size}
        return out


def run(cases: list[tuple[int, int]], repeat: int = 10) -> dict[str, Any]:
    """Each (resolutions, timeline entries) case on a fresh resolutions service."""
    rows = []
    with BenchStack("report", sms=False) as stack:
        stack.start_service("resolutions")
        for k, updates in cases:
            row = asyncio.run(
                measure(stack.url("resolutions"), stack.admin_headers, k, updates, repeat)
            )
            rows.append(row)
            shown = {n: v["ms"].get("p50") for n, v in row.items() if isinstance(v, dict)}
            print(f"  report k={k} updates={updates}: p50 ms {shown}", flush=True)
        return {"rows": rows, "repeat": repeat, "processes": stack.stats()}


if __name__ == "__main__":
    import json

    print(json.dumps(run([(12, 36), (50, 200)], 3), indent=1))
