"""Part 6: 1,500 certificates of attendance for one event (issue 16).

A three-day event; 1,500 participants register through the API and are checked in on
one to three days (``POST /api/v1/checkins`` with ``day``). Then, timed:

1. the issue run, ``POST /api/v1/events/{id}/certificates/issue`` (every certificate
   written with its public event and its notice, in its own document);
2. the emails: until the SMTP capture has accepted one certificate email per
   participant (registration's relay → Kafka → notification → SMTP);
3. the PDFs: every issued certificate (as the organisers' list returns it) drawn by the
   service's renderer (``services.registration.certificate_pdf``), in one process and
   in two (the 2 cores), against the baseline: the same PDF drawn in a plain loop (one
   certificate, rendered ``n`` times).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from email import policy
from email.parser import BytesHeaderParser
from types import SimpleNamespace
from typing import Any

import httpx

from bench.common import percentiles
from bench.stack import BenchStack
from shared.timeutil import EAT

N = 1500
# The PDFs are timed on the first SAMPLE certificates (each its own QR and text) and the
# baseline on as many draws of one: per-PDF figures, not the phase's length, are the point.
SAMPLE = 300


def _certificate(view: dict[str, Any], event: dict[str, Any]) -> SimpleNamespace:
    """What the renderer reads of a certificate, from the organisers' list."""
    return SimpleNamespace(
        template="default",
        language="sw",
        serial=view["serial"],
        full_name=view["full_name"],
        institution=view["institution"],
        issued_at=view["issued_at"],
        event=event,
        days=view["days"],
        hours_by_day=view["hours_by_day"],
        cpd_hours=view["cpd_hours"],
    )


def _render(args: tuple[SimpleNamespace, str]) -> float:
    from services.registration.certificate_pdf import render_certificate

    t = time.perf_counter()
    render_certificate(*args)
    return (time.perf_counter() - t) * 1000


def _certificate_emails(mail_dir: str) -> int:
    parser = BytesHeaderParser(policy=policy.default)
    count = 0
    try:
        entries = list(os.scandir(mail_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.endswith(".eml"):
            with open(entry.path, "rb") as fh:
                if parser.parsebytes(fh.read(4096)).get("X-Mkutano-Template") == "certificate":
                    count += 1
    return count


async def _retried(send: Any, *args: Any, **kwargs: Any) -> httpx.Response:
    """One request, again after a connection the server closed under load (bounded)."""
    for attempt in range(5):
        try:
            return await send(*args, **kwargs)
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
            if attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


async def seed(base: str, headers: dict[str, str], n: int) -> tuple[str, dict[str, Any]]:
    today = datetime.now(UTC).astimezone(EAT).date()
    days = [(today - timedelta(days=2 - i)).isoformat() for i in range(3)]
    event_id = f"bench-cert-{secrets.token_hex(4)}"
    event = {
        "id": event_id,
        "code": event_id.upper()[:32],
        "title_sw": "Mkutano wa Mwaka wa Serikali Mtandao (kipimo)",
        "title_en": "Annual e-Government Conference (benchmark)",
        "venue": "AICC",
        "city": "Arusha",
        "starts_at": datetime.combine(today - timedelta(days=2), clock_time(8), EAT).isoformat(),
        "ends_at": datetime.combine(today, clock_time(23, 59), EAT).isoformat(),
        "capacity": n + 10,
        "registration_opens_at": (datetime.now(UTC) - timedelta(days=3)).isoformat(),
        "state": "published",
    }
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
        (await client.post("/api/v1/events", json=event)).raise_for_status()
        settings = {"cpd_hours": {days[0]: 6, days[1]: 6, days[2]: 4.5}}
        r = await client.put(f"/api/v1/events/{event_id}/certificate-settings", json=settings)
        r.raise_for_status()
        sem = asyncio.Semaphore(20)

        async def one(i: int) -> None:
            async with sem:
                body = {
                    "full_name": f"Mshiriki Namba {i} Mwakyusa",
                    "email": f"mshiriki.{i}.{secrets.token_hex(3)}@example.go.tz",
                    "phone": f"+25571{i:07d}",
                    "institution": f"Taasisi ya Umma {i % 120}",
                    "position": "Afisa TEHAMA",
                    "cadre": "ict_officer",
                    "language": "sw" if i % 3 else "en",
                    "consent": {"accepted": True},
                }
                key = {"Idempotency-Key": f"bench-{event_id}-{i}"}  # a retry registers once
                r = await _retried(
                    client.post,
                    f"/api/v1/events/{event_id}/registrations",
                    json=body,
                    headers=key,
                )
                r.raise_for_status()
                mine = await _retried(
                    client.get,
                    f"/api/v1/registrations/{r.json()['reference']}",
                    headers={"X-Manage-Token": r.json()["manage_token"]},
                )
                ticket = mine.json()["ticket"]
                for day in days[: 1 + i % 3]:
                    c = await _retried(
                        client.post, "/api/v1/checkins", json={"ticket": ticket, "day": day}
                    )
                    if c.status_code != 409:  # 409: a retried check-in already recorded
                        c.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(n)))
    return event_id, {k: event[k] for k in ("title_sw", "title_en", "venue", "city")}


def run(n: int = N, timeout_s: float = 900.0) -> dict[str, Any]:
    """Issue, email and draw ``n`` certificates of one event on a fresh stack."""
    with BenchStack("certificates", sms=False) as stack:
        stack.start_service("registration")
        stack.start_service("notification")
        base, headers = stack.url("registration"), stack.admin_headers
        t = time.perf_counter()
        event_id, event = asyncio.run(seed(base, headers, n))
        seed_s = time.perf_counter() - t
        print(f"  seeded {n} participants with check-ins in {seed_s:.1f} s", flush=True)
        started = time.perf_counter()
        r = httpx.post(
            f"{base}/api/v1/events/{event_id}/certificates/issue", headers=headers, timeout=600
        )
        r.raise_for_status()
        issue_s = time.perf_counter() - started
        report = r.json()
        deadline = time.monotonic() + timeout_s
        emails = 0
        while time.monotonic() < deadline:
            emails = _certificate_emails(str(stack.mail_dir))
            if emails >= n:
                break
            time.sleep(0.5)
        emailed_s = time.perf_counter() - started
        listed = httpx.get(
            f"{base}/api/v1/events/{event_id}/certificates", headers=headers, timeout=120
        ).json()
        processes = stack.stats()
    verify = "https://mkutano.ega.go.tz/verify/"
    jobs = [(_certificate(v, event), verify + v["serial"]) for v in listed][:SAMPLE]
    t = time.perf_counter()
    one_process = [_render(job) for job in jobs]
    one_s = time.perf_counter() - t
    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        two_process = list(pool.map(_render, jobs, chunksize=25))
    two_s = time.perf_counter() - t
    same = jobs[0]
    t = time.perf_counter()
    baseline = [_render(same) for _ in jobs]
    base_s = time.perf_counter() - t
    out = {
        "certificates": len(listed),
        "pdf_sample": len(jobs),
        "issue_report": report,
        "seed_seconds": round(seed_s, 1),
        "issue_seconds": round(issue_s, 2),
        "emails": emails,
        "all_emailed_seconds": round(emailed_s, 1) if emails >= n else None,
        "render_one_process_seconds": round(one_s, 1),
        "render_two_processes_seconds": round(two_s, 1),
        "render_ms": percentiles(one_process),
        "render_ms_two_processes": percentiles(two_process),
        "baseline_seconds": round(base_s, 1),
        "baseline_ms": percentiles(baseline),
        "ratio_to_baseline": round(base_s / one_s, 3) if one_s else None,
        "processes": processes,
    }
    print(
        f"  issue {issue_s:.1f} s, all {emails} emails after {emailed_s:.1f} s, "
        f"PDFs {one_s:.1f} s (1 process) / {two_s:.1f} s (2), baseline {base_s:.1f} s",
        flush=True,
    )
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(200), indent=1))
