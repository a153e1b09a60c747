"""Payments through the GePG simulator: control numbers issued and payments applied.

Registration, notification and payments (as in production, each its own process) and
the GePG simulator (``deploy.gepgsim``, its own process, control numbers at once). An
event with a paid category; ``n`` participants register in it (``pending_payment``):

1. control numbers: from the first registration POST until every bill has its control
   number (registration → notice → bill → signed ``gepgBillSubReq`` → ack → signed
   ``gepgBillSubResp`` by callback);
2. payments, the issue's target: every control number paid at the simulator at once
   (20 at a time); the clock runs until the SMTP capture has accepted every ticket
   email (``confirmation``): the simulator's signed ``gepgPmtSpInfo`` → payments
   verifies, applies, acks → ``payments.v1`` → registration confirms → notification
   emails the ticket.

Baseline, in this process: the same signature and XML work per payment, with the same
library and code (``gepgxml``: the simulator's ``gepgPmtSpInfo`` built and signed
SHA1withRSA, read, verified and parsed by the service's ``GepgV1Gateway.read_callback``,
the ack built and signed by ``GepgV1Gateway.ack``, read and verified on the simulator's
side) in a plain loop: no HTTP, Kafka or MongoDB.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from bench.common import percentiles, wait_for
from bench.stack import BenchStack
from deploy import embedded
from services.payments import gepgxml as gx
from services.payments.adapters import GepgV1Gateway

FEE = 50_000
CONCURRENCY = 20


def paid_event(capacity: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    event_id = f"bench-pay-{secrets.token_hex(4)}"
    return {
        "id": event_id,
        "code": event_id.upper()[:32],
        "title_sw": "Mkutano wa Serikali Mtandao (kipimo cha malipo)",
        "title_en": "e-Government Conference (payments benchmark)",
        "venue": "AICC",
        "city": "Arusha",
        "starts_at": (now + timedelta(days=30)).isoformat(),
        "ends_at": (now + timedelta(days=32)).isoformat(),
        "capacity": capacity,
        "registration_opens_at": (now - timedelta(days=1)).isoformat(),
        "state": "published",
        "categories": [
            {"code": "ict", "name_sw": "Maafisa TEHAMA", "name_en": "ICT officers", "fee_tzs": FEE}
        ],
    }


def _emails(mail_dir: Path, template: str) -> int:
    parser = BytesHeaderParser(policy=policy.default)
    count = 0
    try:
        entries = list(os.scandir(mail_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.endswith(".eml"):
            with open(entry.path, "rb") as fh:
                if parser.parsebytes(fh.read(4096)).get("X-Mkutano-Template") == template:
                    count += 1
    return count


async def _register(base: str, event_id: str, n: int) -> list[float]:
    sem = asyncio.Semaphore(CONCURRENCY)
    took: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def one(i: int) -> None:
            async with sem:
                body = {
                    "full_name": f"Mlipaji Namba {i} Mwakyusa",
                    "email": f"mlipaji.{i}.{secrets.token_hex(3)}@example.go.tz",
                    "phone": f"+25571{i:07d}",
                    "institution": f"Taasisi ya Umma {i % 120}",
                    "position": "Afisa TEHAMA",
                    "category": "ict",
                    "language": "sw" if i % 3 else "en",
                    "consent": {"accepted": True},
                }
                t = time.perf_counter()
                r = await client.post(f"/api/v1/events/{event_id}/registrations", json=body)
                r.raise_for_status()
                took.append((time.perf_counter() - t) * 1000)

        await asyncio.gather(*(one(i) for i in range(n)))
    return took


async def _pay(gepg_url: str, numbers: list[str]) -> list[float]:
    sem = asyncio.Semaphore(CONCURRENCY)
    took: list[float] = []
    # A new connection per payment: the simulator closes idle keep-alive connections, and
    # a POST sent on one it is closing fails with ReadError (the full run of 1,000 met it).
    fresh = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=gepg_url, timeout=60, limits=fresh) as client:

        async def one(number: str) -> None:
            async with sem:
                t = time.perf_counter()
                r = await client.post(
                    "/api/v1/payments",
                    json={"control_number": number, "amount": FEE, "channel": "MOBILE"},
                )
                r.raise_for_status()
                took.append((time.perf_counter() - t) * 1000)

        await asyncio.gather(*(one(x) for x in numbers))
    return took


def baseline(keys: Path, n: int) -> float:
    """The signature and XML work of ``n`` payment notifications; returns seconds."""
    sim_key = gx.load_pkcs12(keys / "gepg.p12", None).private_key
    sp_cert = gx.load_certificate(keys / "sp.crt")
    gateway = GepgV1Gateway(
        SimpleNamespace(
            gepg_url="http://127.0.0.1:1",
            gepg_key_file=str(keys / "sp.p12"),
            gepg_key_password=None,
            gepg_certificate_file=str(keys / "gepg.crt"),
            gepg_certificate_password=None,
            gepg_timeout_s=5,
        )
    )
    e = gx.el
    now = datetime.now(UTC)
    started = time.perf_counter()
    for i in range(n):
        inner = e(
            "gepgPmtSpInfo",
            e(
                "PymtTrxInf",
                e("TrxId", text=f"TRX{i:010d}"),
                e("SpCode", text="SP19988"),
                e("PayRefId", text=f"REF{i:010d}"),
                e("BillId", text=f"bill-{i}"),
                e("PayCtrNum", text=f"99100{i:07d}"),
                e("BillAmt", text=gx.amount(FEE)),
                e("PaidAmt", text=gx.amount(FEE)),
                e("BillPayOpt", text="3"),
                e("CCy", text="TZS"),
                e("TrxDtTm", text=gx.local_time(now)),
                e("UsdPayChnl", text="MOBILE"),
                e("PyrCellNum", text="255700000000"),
                e("PyrName", text="Payer"),
                e("PyrEmail", text="payer@example.invalid"),
                e("PspReceiptNumber", text=f"PSP{i:08d}"),
                e("PspName", text="M-Pesa"),
                e("CtrAccNum", text="0150000000000"),
            ),
        )
        body = gx.envelope(inner, sim_key)  # the simulator signs its notification
        callback = gateway.read_callback(body)  # the service reads and verifies it
        ack = gateway.ack(callback, gx.SUCCESS)  # and signs its acknowledgement
        if not gx.read_message(ack).verified_by(sp_cert):  # which the simulator verifies
            raise RuntimeError("the baseline's acknowledgement does not verify")
    return time.perf_counter() - started


def run(n: int, timeout_s: float = 600.0) -> dict[str, Any]:
    with BenchStack("payments", sms=False) as stack:
        stack.start_service("registration")
        stack.start_service("notification")
        port = embedded.free_port()
        stack.start_gepg(port)
        stack.servers["gepg"].wait_ready()
        stack.start_service("payments", port=port, **stack.gepg_overrides())
        reg, pay = stack.url("registration"), stack.url("payments")
        spec = paid_event(n + 10)
        r = httpx.post(f"{reg}/api/v1/events", json=spec, headers=stack.admin_headers, timeout=30)
        r.raise_for_status()
        event_id = spec["id"]

        def bills() -> list[dict[str, Any]]:
            r = httpx.get(
                f"{pay}/api/v1/bills",
                params={"event_id": event_id},
                headers=stack.admin_headers,
                timeout=60,
            )
            return r.json() if r.status_code == 200 else []

        t0 = time.perf_counter()
        reg_ms = asyncio.run(_register(reg, event_id, n))
        registered_s = time.perf_counter() - t0
        numbered: list[dict[str, Any]] = []

        def all_numbered() -> bool:
            nonlocal numbered
            numbered = [b for b in bills() if b.get("control_number")]
            return len(numbered) >= n

        try:
            wait_for(all_numbered, timeout_s, 0.5)
        except TimeoutError:
            pass
        numbers_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        pay_ms = asyncio.run(
            _pay(f"http://127.0.0.1:{stack.gepg_port}", [b["control_number"] for b in numbered])
        )
        paid_s = time.perf_counter() - t1
        complete = True
        try:
            wait_for(
                lambda: _emails(stack.mail_dir, "confirmation") >= len(numbered), timeout_s, 0.5
            )
        except TimeoutError:
            complete = False
        applied_s = time.perf_counter() - t1
        tickets = _emails(stack.mail_dir, "confirmation")
        processes = stack.stats()
        keys = stack.workdir / "gepg"
        base_s = baseline(keys, len(numbered) or n)
    paid = len(numbered)
    out = {
        "registrations": n,
        "seconds_registering": round(registered_s, 2),
        "registration_ms": percentiles(reg_ms),
        "control_numbers": paid,
        "control_numbers_seconds": round(numbers_s, 2),
        "control_numbers_per_s": round(paid / numbers_s, 1) if numbers_s else None,
        "payments": paid,
        "payments_posted_seconds": round(paid_s, 2),
        "payment_post_ms": percentiles(pay_ms),
        "tickets_emailed": tickets,
        "complete": complete and tickets >= paid == n,
        "applied_seconds": round(applied_s, 2) if complete else None,
        "applied_per_s": round(paid / applied_s, 1) if applied_s else None,
        "baseline_seconds": round(base_s, 3),
        "baseline_per_s": round(paid / base_s, 1) if base_s else None,
        "processes": processes,
    }
    if out["applied_per_s"] and out["baseline_per_s"]:
        out["ratio"] = round(out["applied_per_s"] / out["baseline_per_s"], 3)
    print(
        f"  payments: {paid} control numbers in {numbers_s:.1f} s; {paid} paid, tickets "
        f"{tickets} after {applied_s:.1f} s ({out['applied_per_s']}/s); baseline "
        f"{out['baseline_per_s']}/s",
        flush=True,
    )
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(50), indent=1))
