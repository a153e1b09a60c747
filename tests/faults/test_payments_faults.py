"""Payments faults (issue 14): GePG down while 100 bills are submitted; the payments
service killed between applying a payment notification and GePG getting its ack."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from deploy import embedded
from services.payments.gepgxml import generate_dev_keys
from tests.faults.support import register_many
from tests.helpers import create_event
from tests.stack import wait_until

pytestmark = pytest.mark.e2e

BILLS = 100
FEE = 20_000
# register_many sends the old cadre field (ict_officer): the paid category has its code.
CATEGORIES = [
    {"code": "ict_officer", "name_sw": "Maafisa TEHAMA", "name_en": "ICT officers", "fee_tzs": FEE}
]
PAYMENTS_ENV = {
    "PAYMENTS_SCAN_INTERVAL_S": "0.2",
    "PAYMENTS_SUBMIT_RETRY_BASE_S": "0.5",
    "PAYMENTS_SUBMIT_RETRY_MAX_S": "2",
    "PAYMENTS_SUBMIT_CONCURRENCY": "16",
}


async def bills(payments: Any, headers: dict[str, str], event_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=payments.url, timeout=30) as c:
        r = await c.get("/api/v1/bills", params={"event_id": event_id}, headers=headers)
        return r.json() if r.status_code == 200 else []


def simulator(keys, port: int, callback_url: str, log) -> embedded.Process:
    return embedded.gepg_simulator(port, keys, callback_url=callback_url, log_path=log,
                                   control_number_delay_s=0.2, retry_s=0.5)  # fmt: skip


async def test_gepg_down_while_100_bills_are_submitted(fault_stack, reliability) -> None:
    """GePG down while 100 bills are submitted, then back"""
    stack = fault_stack
    keys = stack.workdir / "gepg"
    for side in ("sp", "gepg"):
        generate_dev_keys(keys, side)
    gepg_port, payments_port = embedded.free_port(), embedded.free_port()
    registration = await stack.start("registration")
    payments = await stack.start(
        "payments", port=payments_port, **PAYMENTS_ENV, **embedded.gepg_env(keys, gepg_port)
    )
    event = await create_event(
        registration.url, stack.admin_headers, capacity=BILLS + 10, categories=CATEGORIES
    )
    answers = await register_many(registration.url, event["id"], BILLS)
    pending = [a for a in answers if a["body"].get("status") == "pending_payment"]
    reliability.record(issue=14, fault="GePG simulator not running while 100 bills are submitted",
                       messages=BILLS, accepted=len(pending))  # fmt: skip
    assert len(pending) == BILLS

    async def all_tried() -> bool:
        found = await bills(payments, stack.admin_headers, event["id"])
        return len(found) == BILLS and all(b["submit_attempts"] >= 1 for b in found)

    await wait_until(all_tried, timeout=120, message="every bill tried while GePG is down")
    waiting = await bills(payments, stack.admin_headers, event["id"])
    assert {b["status"] for b in waiting} == {"submitting"}
    assert all(b["last_error"].startswith("unreachable") for b in waiting)

    gepg = simulator(keys, gepg_port, f"http://127.0.0.1:{payments_port}/api/v1/gepg/callback",
                     stack.workdir / "gepg.log")  # fmt: skip
    gepg.start()
    back = time.monotonic()
    try:

        async def all_issued() -> list | None:
            found = await bills(payments, stack.admin_headers, event["id"])
            issued = [b for b in found if b["control_number"]]
            return issued if len(issued) == BILLS else None

        issued = await wait_until(all_issued, timeout=180, message="control numbers for all")
        numbers = {b["control_number"] for b in issued}
        async with httpx.AsyncClient(timeout=30) as c:
            at_gepg = (await c.get(f"http://127.0.0.1:{gepg_port}/api/v1/bills")).json()
        reliability.record(
            delivered=len(issued),
            lost=BILLS - len(issued),
            duplicated=len(at_gepg) - len({b["bill_id"] for b in at_gepg}),
            recovery_s=time.monotonic() - back,
            note=f"{len(numbers)} distinct control numbers for {BILLS} bills; every "
            "registration stayed pending_payment meanwhile",
        )
        assert len(numbers) == BILLS
    finally:
        gepg.stop()


class AckDropper:
    """A TCP relay from GePG to the payments service that, for the first payment
    notification, lets payments answer, then kills payments and drops the answer: GePG
    never gets its ack and retries."""

    def __init__(self, target_port: int, on_first_payment: Any) -> None:
        self.target_port = target_port
        self.on_first_payment = on_first_payment
        self.dropped = 0
        self.server: asyncio.AbstractServer | None = None
        self.port = embedded.free_port()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self.server:
            self.server.close()

    async def _read_http(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return head + (await reader.readexactly(length) if length else b"")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await self._read_http(reader)
                up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
                up_w.write(request)
                await up_w.drain()
                answer = await self._read_http(up_r)
                up_w.close()
                if b"gepgPmtSpInfo>" in request and not self.dropped:
                    self.dropped += 1
                    self.on_first_payment()  # payments applied it, and dies before GePG hears
                    writer.close()
                    return
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            writer.close()


async def test_payments_killed_before_the_ack_applies_the_payment_once(
    fault_stack, reliability
) -> None:
    """Payments SIGKILLed between applying a payment notification and GePG's ack"""
    stack = fault_stack
    keys = stack.workdir / "gepg"
    for side in ("sp", "gepg"):
        generate_dev_keys(keys, side)
    gepg_port, payments_port = embedded.free_port(), embedded.free_port()
    registration = await stack.start("registration")
    payments = await stack.start(
        "payments", port=payments_port, **PAYMENTS_ENV, **embedded.gepg_env(keys, gepg_port)
    )
    relay = AckDropper(payments_port, payments.kill)
    await relay.start()
    gepg = simulator(keys, gepg_port, f"http://127.0.0.1:{relay.port}/api/v1/gepg/callback",
                     stack.workdir / "gepg.log")  # fmt: skip
    gepg.start()
    try:
        event = await create_event(
            registration.url, stack.admin_headers, capacity=10, categories=CATEGORIES
        )
        [answer] = await register_many(registration.url, event["id"], 1)
        assert answer["body"]["status"] == "pending_payment"

        async def issued() -> dict | None:
            found = await bills(payments, stack.admin_headers, event["id"])
            return found[0] if found and found[0]["control_number"] else None

        bill = await wait_until(issued, timeout=60, message="the control number")
        async with httpx.AsyncClient(timeout=30) as c:
            paid = await c.post(
                f"http://127.0.0.1:{gepg_port}/api/v1/payments",
                json={"control_number": bill["control_number"], "amount": FEE, "channel": "MOBILE"},
            )
            assert paid.status_code == 201
        await wait_until(lambda: relay.dropped == 1 and not payments.alive, timeout=60,
                         message="payments killed before the ack")  # fmt: skip
        reliability.record(issue=14, fault="payments SIGKILL after applying a payment, before "
                           "GePG's ack; GePG retries", messages=1, accepted=1)  # fmt: skip
        await payments.restart()
        back = time.monotonic()

        async def acknowledged() -> bool:
            async with httpx.AsyncClient(timeout=30) as c:
                pays = (await c.get(f"http://127.0.0.1:{gepg_port}/api/v1/payments")).json()
            return bool(pays) and pays[0]["acknowledged"]

        await wait_until(acknowledged, timeout=90, message="GePG's retry acknowledged")
        [after] = await bills(payments, stack.admin_headers, event["id"])
        reliability.record(
            delivered=len(after["payments"]),
            lost=1 - min(1, len(after["payments"])),
            duplicated=max(0, len(after["payments"]) - 1),
            recovery_s=time.monotonic() - back,
        )
        assert len(after["payments"]) == 1 and after["status"] == "paid"
        assert after["paid_total_tzs"] == FEE
    finally:
        await relay.close()
        gepg.stop()
