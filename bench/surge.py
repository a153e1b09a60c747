"""Parts 2 and 4: a registration surge, until every confirmation email is accepted.

Registration and notification run as in production (email channel; the SMS gateway
is not configured, so the figures are for the email confirmations the issue names).
wrk posts ``n`` registrations over 50 connections as fast as the API takes them, for
an event with room for all. The clock starts when wrk starts and stops when the SMTP
capture has accepted ``n`` confirmation emails. Registration-to-email latency pairs
each registration's ``created_at`` (its MongoDB document) with the acceptance time of
the email carrying its reference (the capture's file name is a nanosecond timestamp).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from datetime import datetime
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

from pymongo import MongoClient

from bench.common import create_event, percentiles, wait_for
from bench.loadgen import post_registrations
from bench.stack import BenchStack

REFERENCE = re.compile(r"MK-[0-9A-Z]{5}-[0-9A-Z]{5}")
SURGE_CONNECTIONS = 50


def email_times_by_reference(mail_dir: str) -> dict[str, float]:
    """reference -> acceptance time (epoch s) of the email naming it in its subject."""
    parser = BytesHeaderParser(policy=policy.default)
    out: dict[str, float] = {}
    for entry in os.scandir(mail_dir):
        if not entry.name.endswith(".eml"):
            continue
        with open(entry.path, "rb") as fh:
            head = fh.read(8192)  # headers only: the body carries the QR PNG and the .ics
        subject = str(parser.parsebytes(head).get("Subject", ""))
        match = REFERENCE.search(subject)
        if match:
            out[match.group(0)] = int(entry.name.split("-", 1)[0]) / 1e9
    return out


def run_one(
    n: int,
    timeout_s: float,
    *,
    idle_s: float | None = None,
    settle_s: float = 120.0,
    notification_instances: int = 1,
) -> dict[str, Any]:
    """One surge of ``n`` registrations on a fresh stack on disk; with ``idle_s``, then
    the idle figures of that stack (``bench.idle.after_load``) in ``result["idle"]``."""
    with BenchStack(f"surge{n}", sms=False, storage="disk") as stack:
        stack.start_service("registration")
        stack.start_service("notification")
        for i in range(2, notification_instances + 1):  # the scale-out phase: same group
            stack.start_service("notification", instance=f"notification-{i}")
        reg_url = stack.url("registration")
        event_id = create_event(reg_url, stack.admin_headers, capacity=n + 100)
        cpu_before = {k: v.get("cpu_s", 0.0) for k, v in stack.stats().items()}
        started = time.time()
        load = post_registrations(
            reg_url,
            f"/api/v1/events/{event_id}/registrations",
            total=n,
            connections=SURGE_CONNECTIONS,
            prefix=f"s{secrets.token_hex(3)}",
            max_seconds=timeout_s,
        )
        accepted = time.time()
        expected = n - load.non_201
        remaining = max(1.0, timeout_s - (accepted - started))
        try:
            # Counting the capture directory costs more as it fills; poll less often for
            # the big surges so the bench itself takes little CPU from the stack (the
            # figures come from the capture's file times, not from this poll).
            poll_s = max(0.25, n / 20_000)
            wait_for(lambda: stack.mail_count() >= expected, remaining, poll_s)
            complete = load.non_201 == 0  # a refused registration is not a confirmed one
        except TimeoutError:
            complete = False
        stats = stack.stats()
        mails = email_times_by_reference(str(stack.mail_dir))
        mongo: MongoClient = MongoClient(stack.mongo_url)
        try:
            regs = list(
                mongo["mkutano_registration"]["registrations"].find(
                    {"event_id": event_id}, {"reference": 1, "created_at": 1}
                )
            )
        finally:
            mongo.close()
        latencies = []
        for reg in regs:
            sent = mails.get(reg["reference"])
            if sent is not None:
                created = datetime.fromisoformat(reg["created_at"].replace("Z", "+00:00"))
                latencies.append((sent - created.timestamp()) * 1000)
        last_mail = max(mails.values()) if mails else accepted
        total_s = last_mail - started
        cpu = {
            name: round(s.get("cpu_s", 0.0) - cpu_before.get(name, 0.0), 2)
            for name, s in stats.items()
        }
        result = {
            "registrations": n,
            "notification_instances": notification_instances,
            "accepted_201": n - load.non_201,
            "non_201": load.non_201,
            "registrations_stored": len(regs),
            "emails": len(mails),
            "complete": complete,
            "api_seconds": round(load.duration_s, 2),
            "api_throughput_rps": round(load.throughput, 1),
            "api_latency_ms": load.lat_ms,
            "seconds_to_last_email": round(total_s, 2),
            "ms_per_registration": round(total_s / n * 1000, 2),
            "cpu_ms_per_registration": round(sum(cpu.values()) / n * 1000, 2),
            "cpu_s_by_process": cpu,
            "registration_to_email_ms": percentiles(latencies, (50, 90, 95, 99)),
            "peak_rss_mib": {k: v.get("peak_rss_mib") for k, v in stats.items()},
        }
        print(
            f"  surge n={n}: API {load.throughput:.0f}/s, last email after {total_s:.1f}s "
            f"({len(mails)} emails, complete={complete}), reg->email p50 "
            f"{result['registration_to_email_ms'].get('p50')} ms",
            flush=True,
        )
        if idle_s:
            from bench import idle

            result["idle"] = {"registrations": n, **idle.after_load(stack, idle_s, settle_s)}
            print(idle.line(result["idle"]), flush=True)
        return result


def run(
    sizes: list[int], budget_s: float, *, idle_at: tuple[int, ...] = (), idle_s: float = 60.0
) -> dict[str, Any]:
    """Surges of growing size; a size projected (linearly) past ``budget_s`` is skipped.
    After each size in ``idle_at``, the stack's idle figures (``bench.idle``)."""
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for n in sizes:
        if rows:
            prev = rows[-1]
            projected = prev["seconds_to_last_email"] * n / prev["registrations"]
            if projected > budget_s or not prev["complete"]:
                skipped.append(
                    {
                        "registrations": n,
                        "reason": f"projected {projected:.0f}s from the {prev['registrations']} "
                        f"surge (linear, optimistic) exceeds the {budget_s:.0f}s budget"
                        if prev["complete"]
                        else "the previous size did not complete",
                    }
                )
                print(f"  surge n={n}: skipped ({skipped[-1]['reason']})", flush=True)
                continue
        rows.append(run_one(n, timeout_s=budget_s, idle_s=idle_s if n in idle_at else None))
    return {"connections": SURGE_CONNECTIONS, "rows": rows, "skipped": skipped}


if __name__ == "__main__":
    import json
    import sys

    sizes = [int(s) for s in sys.argv[1:]] or [200]
    print(json.dumps(run(sizes, 300), indent=1))
